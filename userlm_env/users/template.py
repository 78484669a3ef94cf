"""The UserLM chat template: Llama-3 headers, and the prompt always opens a *user* turn.

UserLM-8b (``microsoft/UserLM-8b``) is trained to write the user's messages. Its template renders
every message as ``<|start_header_id|>{role}<|end_header_id|>`` + separator + content +
``<|eot_id|>`` and, after the last message, opens a ``user`` turn for the model to complete.
Roles are not swapped: the user's messages stay ``user``, the assistant's stay ``assistant``.

Public copies of the template disagree on the separator (one or two newlines), so when the real
tokenizer is at hand its own ``chat_template`` is used (see :func:`has_userlm_template`); this
module's fallback keeps the separator configurable.
"""

from __future__ import annotations

BEGIN_OF_TEXT = "<|begin_of_text|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
END_OF_TURN = "<|eot_id|>"
END_CONVERSATION = "<|endconversation|>"
SPECIAL_TOKENS = (BEGIN_OF_TEXT, START_HEADER, END_HEADER, END_OF_TURN, END_CONVERSATION)
DEFAULT_SEPARATOR = "\n\n"


def userlm_chat_template(separator: str = DEFAULT_SEPARATOR) -> str:
    """A Jinja chat template in UserLM's format that ends by opening a user turn.

    Args:
        separator: text between a role header and the message content.

    Returns:
        The template string, usable as ``tokenizer.chat_template``.
    """
    sep = separator.replace("\n", "\\n")
    return (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{{ '" + START_HEADER + "' + message['role'] + '" + END_HEADER + sep + "' }}"
        "{{ message['content'] | trim }}{{ '" + END_OF_TURN + "' }}"
        "{% endfor %}"
        "{{ '" + START_HEADER + "user" + END_HEADER + sep + "' }}"
    )


def render_userlm_prompt(messages: list[dict[str, str]], separator: str = DEFAULT_SEPARATOR) -> str:
    """Render messages the way :func:`userlm_chat_template` does, without a tokenizer.

    This is the template's *text*: control-token strings inside contents are left as they are, so
    tokenizing it (or sending it to a server, which parses them) would let a message forge turns.
    Prompts for a model go through :func:`userlm_env.backends.rendering.render_chat_ids` (token ids)
    and, for a text-only server, :func:`userlm_env.backends.rendering.prompt_text_for_server`.
    """
    parts = [BEGIN_OF_TEXT]
    for message in messages:
        parts.append(f"{START_HEADER}{message['role']}{END_HEADER}{separator}{message['content'].strip()}{END_OF_TURN}")
    parts.append(f"{START_HEADER}user{END_HEADER}{separator}")
    return "".join(parts)


def has_userlm_template(tokenizer) -> bool:
    """Whether ``tokenizer.chat_template`` opens a user turn after the conversation (UserLM-style)."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    probe = [{"role": "system", "content": "intent"}, {"role": "assistant", "content": "hi"}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except Exception:  # a template that cannot render this probe is not a UserLM template
        return False
    tail = text[text.rfind(START_HEADER) :] if START_HEADER in text else ""
    return tail.startswith(f"{START_HEADER}user{END_HEADER}")


def parse_userlm_prompt(text: str, separator: str = DEFAULT_SEPARATOR) -> tuple[list[dict[str, str]], bool]:
    """Parse text in UserLM's format back into messages (the inverse of :func:`render_userlm_prompt`).

    Args:
        text: a rendering, with or without the leading ``<|begin_of_text|>``; it may end with an
            open header (the generation prompt) or with a partial, unterminated turn.
        separator: the header/content separator the text was rendered with.

    Returns:
        ``(messages, opens_user_turn)``: the messages (``role``/``content``, content stripped; a
        last turn without ``<|eot_id|>`` is included as it is) and whether the text ends by
        opening an empty ``user`` turn.

    Raises:
        ValueError: a header is not followed by ``separator`` or a role header is malformed.
    """
    body = text[len(BEGIN_OF_TEXT) :] if text.startswith(BEGIN_OF_TEXT) else text
    messages: list[dict[str, str]] = []
    opens_user = False
    for chunk in body.split(START_HEADER)[1:]:
        role, found, rest = chunk.partition(END_HEADER)
        if not found:
            raise ValueError(f"malformed header: {START_HEADER}{chunk[:40]!r} has no {END_HEADER}")
        if not rest.startswith(separator):
            raise ValueError(f"the {role!r} header is not followed by the separator {separator!r}: {rest[:20]!r}")
        content = rest[len(separator) :]
        if content.endswith(END_OF_TURN):
            messages.append({"role": role, "content": content[: -len(END_OF_TURN)].strip()})
        elif content == "" and role == "user":
            opens_user = True
        else:
            messages.append({"role": role, "content": content.strip()})
    return messages, opens_user
