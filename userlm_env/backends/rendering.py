"""Chat prompts where message contents can never become control tokens.

An assistant reply (the RL action) is written into the simulated user's prompt. Rendered with the
chat template and tokenized as one text, a reply holding the *strings* ``<|eot_id|>``,
``<|start_header_id|>system<|end_header_id|>`` or ``<|im_start|>`` would be tokenized as the real
control tokens, forging turns (a fake system message, a fake user turn, ``<|endconversation|>``) in
the simulated user's context. This module is the one place where messages meet a tokenizer, for
every caller (UserLM and prompted users, assistants, the LLM judge, local and over HTTP):

- :func:`render_chat_ids`: token ids of a conversation under a chat template. Control-token strings
  inside message contents are *marked* (wrapped in private-use characters) before the template runs;
  after rendering, each marked string is encoded as plain text (``split_special_tokens=True``) and
  everything else, the template's own control tokens included, as before. A conversation without
  control-token strings in its contents is tokenized exactly as ``apply_chat_template(...,
  tokenize=True)`` does (the same single ``tokenizer(text, add_special_tokens=False)`` call).
- :func:`encode_untrusted_text`: the same for one piece of text (the flipped User LM's contents).
- :func:`prompt_text_for_server`: the text to send to a server that only takes text prompts and
  parses control-token strings in it (llama-cpp-python's server). Control-token strings that came
  from contents are neutralized by inserting a zero-width space (U+200B) after their first character;
  a prompt without them is sent exactly as before.
- :func:`escape_control_strings` / :func:`escape_messages`: the same neutralization for messages sent
  to a chat endpoint (the server applies its own template).

Control tokens are the tokenizer's special tokens plus the added tokens that the chat template
writes (e.g. Qwen's ``<tool_call>``), as in transformers' own ``sanitize_control_tokens``.

Limits: a template that builds control tokens out of content (``'<|' + message['role'] + '|>'``)
or a tokenizer that matches special tokens after normalization (none of the Llama-3, ChatML or
SentencePiece tokenizers do) is not covered; a control token formed across the boundary between a
content and the template's own text needs a template that writes a partial control token (none does).
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ZERO_WIDTH_SPACE = "\u200b"
_MARK_START = "\U000f0000"  # supplementary private use area: never produced by a template or tokenizer
_MARK_END = "\U000f0001"
_MARKERS_RE = re.compile(f"[{_MARK_START}{_MARK_END}]")

# Control-token shapes of common chat formats, for chat endpoints without a local tokenizer:
# Llama-3 / ChatML / Phi / Qwen / gpt-oss ``<|...|>``, DeepSeek's full-width ``<｜...｜>``, Gemma's turn
# markers, Llama-2 / Mistral ``[INST]`` and ``<s>``.
GENERIC_CONTROL_PATTERN = (
    r"<\|[^\s<>|]{1,64}\|>|<｜[^\s<>｜]{1,64}｜>|<(?:start|end)_of_turn>|</?s>|\[/?INST\]|<<?/?SYS>>?|<bos>|<eos>"
)
_GENERIC_CONTROL_RE = re.compile(GENERIC_CONTROL_PATTERN)

_control_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _added_tokens(tokenizer) -> list[tuple[str, bool]]:
    """``(content, special)`` of every added token (empty for objects that are not HF tokenizers)."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    out = []
    if isinstance(decoder, Mapping):
        for token in decoder.values():
            content = getattr(token, "content", token)
            if isinstance(content, str) and content:
                out.append((content, bool(getattr(token, "special", True))))
    for content in getattr(tokenizer, "all_special_tokens", None) or ():
        if isinstance(content, str) and content:
            out.append((content, True))
    return out


def control_tokens(tokenizer, chat_template: str | None = None) -> tuple[str, ...]:
    r"""The tokenizer's control tokens: special tokens, and added tokens the chat template writes.

    Args:
        tokenizer: a Hugging Face tokenizer (anything else has none).
        chat_template: the template in use (default: the tokenizer's own).

    Returns:
        The tokens' strings, longest first (whitespace-only added tokens, like Gemma's ``"\\n"``,
        are ordinary text in templates and are left out).
    """
    template = chat_template if chat_template is not None else getattr(tokenizer, "chat_template", None)
    template = template if isinstance(template, str) else ""
    try:
        key = (len(tokenizer), template)
        cached = _control_cache.get(tokenizer)
    except TypeError:  # not weak-referenceable or no len(): compute every time
        key, cached = None, None
    if cached is not None and cached[0] == key:
        return cached[1]
    tokens = {c for c, special in _added_tokens(tokenizer) if (special or c in template) and not c.isspace()}
    result = tuple(sorted(tokens, key=lambda t: (-len(t), t)))
    if key is not None:
        _control_cache[tokenizer] = (key, result)
    return result


@functools.lru_cache(maxsize=64)
def _control_re(tokens: tuple[str, ...]) -> re.Pattern | None:
    if not tokens:
        return None
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


@functools.lru_cache(maxsize=64)
def _marked_re(tokens: tuple[str, ...]) -> re.Pattern:
    """A marked control token (markers on both sides, or on one side the template cut off), or a lone marker."""
    alt = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) or "(?!)"
    s, e = _MARK_START, _MARK_END
    return re.compile(f"{s}({alt}){e}|{s}({alt})|({alt}){e}|[{s}{e}]")


def _mark(value: Any, pattern: re.Pattern | None) -> Any:
    """Wrap control-token strings in ``value`` (a string, or lists/dicts of them) with the markers."""
    if isinstance(value, str):
        value = _MARKERS_RE.sub("", value)  # markers in the input cannot forge or unmark anything
        if pattern is None:
            return value
        return pattern.sub(lambda m: f"{_MARK_START}{m.group(0)}{_MARK_END}", value)
    if isinstance(value, Mapping):
        return {k: _mark(v, pattern) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark(v, pattern) for v in value]
    return value


def _ids(encoded) -> list[int]:
    if isinstance(encoded, Mapping) or hasattr(encoded, "input_ids"):
        encoded = encoded["input_ids"]
    return [int(i) for i in encoded]


def _control_ids(tokenizer, tokens: Iterable[str]) -> set[int]:
    ids = set()
    unk = getattr(tokenizer, "unk_token_id", None)
    for token in tokens:
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != unk:
            ids.add(tid)
    return ids


def _encode_piece(tokenizer, piece: str, *, plain: bool) -> list[int]:
    """Encode a piece from the middle of a text (no SentencePiece prefix space); ``plain``: no added tokens."""
    kwargs = {"add_special_tokens": False}
    if plain:
        kwargs["split_special_tokens"] = True
    newline = _ids(tokenizer("\n", add_special_tokens=False))
    ids = _ids(tokenizer("\n" + piece, **kwargs))
    if newline and ids[: len(newline)] == newline:
        return ids[len(newline) :]
    return _ids(tokenizer(piece, **kwargs))


def _encode_plain(tokenizer, piece: str, controls: set[int], first: bool) -> list[int]:
    """``piece`` as plain text; if the vocabulary still yields a control token, break it with a zero-width space."""
    if first:
        ids = _ids(tokenizer(piece, add_special_tokens=False, split_special_tokens=True))
    else:
        ids = _encode_piece(tokenizer, piece, plain=True)
    if controls.isdisjoint(ids):
        return ids
    broken = piece[:1] + ZERO_WIDTH_SPACE + piece[1:]
    ids = _encode_piece(tokenizer, broken, plain=True)
    if not controls.isdisjoint(ids):
        raise ValueError(f"cannot encode {piece!r} as plain text: the tokenizer turns it into a control token")
    return ids


def _encode_marked(tokenizer, text: str, tokens: tuple[str, ...]) -> list[int]:
    """Encode rendered text: marked control tokens as plain text, the rest (the template's tokens) as usual."""
    controls = _control_ids(tokenizer, tokens)
    ids: list[int] = []
    cursor = 0
    for match in _marked_re(tokens).finditer(text):
        before = text[cursor : match.start()]
        if before:
            ids += (
                _ids(tokenizer(before, add_special_tokens=False))
                if cursor == 0
                else _encode_piece(tokenizer, before, plain=False)
            )
        token = match.group(1) or match.group(2) or match.group(3)
        if token:
            ids += _encode_plain(tokenizer, token, controls, first=not ids and match.start() == 0)
        cursor = match.end()
    rest = text[cursor:]
    if rest:
        ids += (
            _ids(tokenizer(rest, add_special_tokens=False))
            if cursor == 0
            else _encode_piece(tokenizer, rest, plain=False)
        )
    return ids


def encode_continuation(tokenizer, text: str) -> list[int]:
    """Ids of ``text`` appended to a prompt (no SentencePiece prefix space; control tokens parsed, as servers do)."""
    return _encode_piece(tokenizer, text, plain=False) if text else []


def render_chat_ids(
    tokenizer,
    messages: Sequence[Mapping[str, Any]],
    chat_template: str | None = None,
    add_generation_prompt: bool = True,
) -> list[int]:
    """Token ids of ``messages`` under the chat template, message contents never becoming control tokens.

    Equal to ``tokenizer.apply_chat_template(messages, chat_template=..., add_generation_prompt=...,
    tokenize=True)`` whenever no content holds a control-token string; otherwise those strings are
    encoded as ordinary text, so the ids hold exactly the control tokens the template writes.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template (or ``chat_template`` given).
        messages: the conversation (``role``/``content``; any string value is treated as content).
        chat_template: a template to use instead of the tokenizer's own.
        add_generation_prompt: open the next turn after the conversation.
    """
    text = render_marked_text(tokenizer, messages, chat_template, add_generation_prompt)
    return encode_marked_text(tokenizer, text, chat_template)


def render_marked_text(
    tokenizer,
    messages: Sequence[Mapping[str, Any]],
    chat_template: str | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The chat template's text of ``messages`` with every control-token string of a content marked.

    For callers that cut the rendered text before tokenizing it (a prefix, the env's part of a
    conversation): encode each piece with :func:`encode_marked_text`. Text with no marked string is
    exactly ``apply_chat_template(..., tokenize=False)``.
    """
    tokens = control_tokens(tokenizer, chat_template)
    marked = [_mark(dict(m), _control_re(tokens)) for m in messages]
    text = tokenizer.apply_chat_template(
        marked, chat_template=chat_template, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(text).__name__}, expected str")
    return text


def encode_marked_text(tokenizer, text: str, chat_template: str | None = None) -> list[int]:
    """Ids of a piece of :func:`render_marked_text`'s text: marked strings as plain text, template tokens as usual."""
    if _MARK_START not in text and _MARK_END not in text:
        return _ids(tokenizer(text, add_special_tokens=False))  # exactly what apply_chat_template(tokenize=True) does
    return _encode_marked(tokenizer, text, control_tokens(tokenizer, chat_template))


def encode_untrusted_text(tokenizer, text: str, chat_template: str | None = None) -> list[int]:
    """``tokenizer.encode(text, add_special_tokens=False)``, except that control-token strings stay plain text.

    For contents tokenized piece by piece (the flipped User LM's training examples). Text without
    control-token strings gets exactly the usual ids.
    """
    tokens = control_tokens(tokenizer, chat_template)
    pattern = _control_re(tokens)
    marked = _mark(text, pattern)
    if _MARK_START not in marked:
        return _ids(tokenizer(marked, add_special_tokens=False))
    return _encode_marked(tokenizer, marked, tokens)


def env_turn_ids(
    tokenizer, before: Sequence[Mapping[str, str]], after: Sequence[Mapping[str, str]], end_of_reply: str
) -> list[int]:
    """Tokens the environment adds after the policy's reply: the rendering of ``after`` beyond ``before``.

    Training (``training/episodes.py``) and the verl agent loop build their token streams with it.
    ``before`` ends with the assistant's reply; the text after that reply's ``end_of_reply`` token
    (e.g. ``<|im_end|>``, which the policy generated itself) up to the next open assistant turn is
    what the env contributes. Control-token strings inside the user's words stay plain text.
    """
    full = render_marked_text(tokenizer, list(after), add_generation_prompt=True)
    prefix = render_marked_text(tokenizer, list(before), add_generation_prompt=False)
    cut = prefix.rfind(end_of_reply)
    if cut < 0 or not full.startswith(prefix[: cut + len(end_of_reply)]):
        raise ValueError(
            "the chat template does not render the conversation as a growing prefix; cannot split env tokens"
        )
    return encode_marked_text(tokenizer, full[cut + len(end_of_reply) :])


def escape_control_strings(text: str, tokens: Iterable[str] = (), *, generic: bool = False) -> str:
    """Insert a zero-width space after the first character of every control-token string in ``text``.

    Args:
        text: untrusted text (a message content).
        tokens: control-token strings (:func:`control_tokens`).
        generic: also break the common control-token shapes of :data:`GENERIC_CONTROL_PATTERN`
            (for servers whose tokenizer is not known locally).

    Returns:
        ``text`` unchanged when it holds no control-token string.
    """
    patterns = [p for p in (_control_re(tuple(sorted(set(tokens), key=len, reverse=True))),) if p is not None]
    if generic:
        patterns.append(_GENERIC_CONTROL_RE)
    for _ in range(8):  # each pass breaks every match; a break never creates a new one, so one pass suffices
        changed = False
        for pattern in patterns:
            new = pattern.sub(lambda m: m.group(0)[:1] + ZERO_WIDTH_SPACE + m.group(0)[1:], text)
            changed |= new != text
            text = new
        if not changed:
            break
    return text


def escape_messages(
    messages: Sequence[Mapping[str, Any]], tokens: Iterable[str] = (), *, generic: bool = True
) -> list[dict[str, Any]]:
    """Messages for a chat endpoint with :func:`escape_control_strings` applied to every string but ``role``."""
    tokens = tuple(tokens)

    def esc(value: Any) -> Any:
        if isinstance(value, str):
            return escape_control_strings(value, tokens, generic=generic)
        if isinstance(value, Mapping):
            return {k: esc(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [esc(v) for v in value]
        return value

    return [{k: (v if k == "role" else esc(v)) for k, v in dict(m).items()} for m in messages]


def prompt_text_for_server(tokenizer, ids: Sequence[int], chat_template: str | None = None) -> str:
    """Text of a rendered prompt for a server that tokenizes text prompts with control tokens parsed.

    The server's tokenization of the result holds the control tokens of ``ids`` and no others: text
    between control tokens that would read as a control token (a content's ``<|eot_id|>``, encoded as
    plain text by :func:`render_chat_ids`) gets a zero-width space after its first character.
    Without such text the result is ``tokenizer.decode(ids, skip_special_tokens=False)``, as before.
    """
    ids = [int(i) for i in ids]
    full = tokenizer.decode(ids, skip_special_tokens=False)
    tokens = control_tokens(tokenizer, chat_template)
    pattern = _control_re(tokens)
    if pattern is None:
        return full
    controls = _control_ids(tokenizer, tokens)
    expected = sum(i in controls for i in ids)
    if len(pattern.findall(full)) == expected:
        return full  # every control-token string in the text is one of the prompt's control tokens
    parts: list[str] = []
    run: list[int] = []
    for tid in ids + [None]:
        if tid is None or tid in controls:
            if run:
                parts.append(escape_control_strings(tokenizer.decode(run, skip_special_tokens=False), tokens))
                run = []
            if tid is not None:
                parts.append(tokenizer.decode([tid], skip_special_tokens=False))
        else:
            run.append(tid)
    text = "".join(parts)
    found = len(pattern.findall(text))
    if found != expected:
        raise ValueError(f"could not neutralize a prompt's control-token strings ({found} found, {expected} expected)")
    return text
