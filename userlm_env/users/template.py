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

    Used to build prompts for a completions endpoint when the tokenizer is not loaded locally.
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
