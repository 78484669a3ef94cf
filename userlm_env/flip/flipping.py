r"""Flip a conversation into a User LM training example: the model learns to write the *user* turns.

The layout is UserLM's (:mod:`userlm_env.users.template`): the conversation's high-level intent is
the system message, every message is ``<|start_header_id|>{role}<|end_header_id|>`` + separator +
content + ``<|eot_id|>``, and roles are not swapped. Targets (labels) are the user turns' content
and their ``<|eot_id|>``; the system message, the headers and the assistant's turns are context
(label ``-100``). After the assistant's last reply comes one more user turn made of the single
token ``<|endconversation|>`` (a target): the model learns *when* the real user stopped.

Token ids are built segment by segment (header, content, end of turn), which makes masking exact.
With the default separator ``"\n"`` this equals tokenizing the whole rendered text at once (a
ByteLevel tokenizer splits ``"\n\n"`` differently before a word than at the end of a prompt, so a
two-newline separator would train on a different tokenisation than the one generation sees).

Contents (and the intent) are untrusted text: a control-token string inside them (a ShareGPT user who
typed ``<|endoftext|>`` or ``<|eot_id|>``) is encoded as plain text, never as the control token
(:func:`~userlm_env.backends.rendering.encode_untrusted_text`, as generation renders contents), so the
model is never trained on forged turn boundaries. Contents without such strings get the same ids as before.

Example:
    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> tok = AutoTokenizer.from_pretrained(path)  # doctest: +SKIP
    >>> prepare_tokenizer(tok)  # adds the UserLM special tokens and chat template  # doctest: +SKIP
    >>> example = flip_conversation(conv, "Get help with X.", tok, FlipConfig(max_length=512))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from userlm_env.backends.rendering import encode_untrusted_text
from userlm_env.flip.data import Conversation
from userlm_env.users.template import (
    BEGIN_OF_TEXT,
    END_CONVERSATION,
    END_HEADER,
    END_OF_TURN,
    SPECIAL_TOKENS,
    START_HEADER,
    userlm_chat_template,
)

IGNORE_INDEX = -100
FLIP_SEPARATOR = "\n"
PROMPTED_END_MARKER = "[END]"
PROMPTED_USER_SYSTEM = (
    "You are role-playing a human user who is chatting with an AI assistant. You are NOT the assistant. "
    "What you want from this conversation: {intent}\n"
    "Write only the user's next message, in the user's own voice, the way a real person types to a chatbot. "
    "When you have what you wanted and would stop chatting, reply with exactly " + PROMPTED_END_MARKER + "."
)


@dataclass(frozen=True)
class FlipConfig:
    """How conversations become training examples.

    Attributes:
        separator: text between a role header and the content (also baked into the chat template).
        max_length: maximum tokens per example; later turns that do not fit are cut at a turn
            boundary (a cut conversation gets no end-of-conversation target).
        max_user_tokens: a longer user turn is truncated; its ``<|eot_id|>`` is then context only
            (the model is not taught to stop mid-thought).
        max_assistant_tokens: assistant turns are truncated to this many tokens (context only).
        max_intent_tokens: the intent (system message) is truncated to this many tokens.
        end_of_conversation: add the ``<|endconversation|>`` turn after the last assistant reply.
    """

    separator: str = FLIP_SEPARATOR
    max_length: int = 512
    max_user_tokens: int = 128
    max_assistant_tokens: int = 96
    max_intent_tokens: int = 64
    end_of_conversation: bool = True

    def __post_init__(self) -> None:
        for name in ("max_length", "max_user_tokens", "max_assistant_tokens", "max_intent_tokens"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class FlippedExample:
    """One tokenised training (or scoring) example.

    Attributes:
        id: the conversation's id.
        input_ids: the token ids.
        labels: ``input_ids`` where the loss applies (user turns, end token), ``-100`` elsewhere.
        user_spans: ``(user_turn_index, start, end)``: the token range of each included user
            turn's *content* (no header, no end-of-turn), for per-turn perplexity.
        ended: whether the ``<|endconversation|>`` target is included.
        user_turns: how many user turns are (at least partly) included.
    """

    id: str
    input_ids: list[int]
    labels: list[int]
    user_spans: list[tuple[int, int, int]] = field(default_factory=list)
    ended: bool = False
    user_turns: int = 0

    def to_dict(self) -> dict:
        """The columns a pre-tokenised TRL ``SFTTrainer`` dataset needs (``input_ids``, ``labels``)."""
        return {"input_ids": self.input_ids, "labels": self.labels}


def _encode(tokenizer, text: str) -> list[int]:
    """Template structure: control-token strings are control tokens."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def _encode_content(tokenizer, text: str) -> list[int]:
    """A message's content or an intent: control-token strings stay plain text."""
    return encode_untrusted_text(tokenizer, text)


def _token_id(tokenizer, token: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no {token!r} token; call prepare_tokenizer(tokenizer) first")
    return int(tid)


def prepare_tokenizer(tokenizer, separator: str = FLIP_SEPARATOR) -> list[str]:
    """Make ``tokenizer`` a UserLM tokenizer: special tokens, BOS/EOS, and the UserLM chat template.

    Adds whichever of ``<|begin_of_text|>``, ``<|start_header_id|>``, ``<|end_header_id|>``,
    ``<|eot_id|>`` and ``<|endconversation|>`` it lacks as special tokens (each one id, never split),
    sets ``bos_token`` to ``<|begin_of_text|>`` and ``eos_token`` to ``<|eot_id|>``, keeps or sets a
    pad token, and stores :func:`~userlm_env.users.template.userlm_chat_template` as
    ``chat_template``, so the saved model loads as ``userlm:PATH``.

    Args:
        tokenizer: a fast Hugging Face tokenizer (modified in place).
        separator: header/content separator of the template.

    Returns:
        The tokens that were added (resize the model's embeddings when not empty:
        :func:`prepare_model`).
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    tokenizer.bos_token = BEGIN_OF_TEXT
    old_eos = tokenizer.eos_token
    tokenizer.eos_token = END_OF_TURN
    if tokenizer.pad_token is None or tokenizer.pad_token in (END_OF_TURN, END_CONVERSATION):
        tokenizer.pad_token = old_eos if old_eos not in (None, END_OF_TURN, END_CONVERSATION) else BEGIN_OF_TEXT
    tokenizer.chat_template = userlm_chat_template(separator)
    for token in (END_OF_TURN, END_CONVERSATION, START_HEADER, END_HEADER):
        if len(_encode(tokenizer, token)) != 1:
            raise RuntimeError(f"{token!r} is not a single token after prepare_tokenizer; the tokenizer is unusual")
    return missing


def prepare_model(model, tokenizer, init_from: dict[str, str] | None = None) -> None:
    """Resize ``model``'s embeddings to ``tokenizer`` and set its special-token ids for generation.

    New rows are initialised to the mean of the existing embeddings (transformers' mean resizing),
    or copied from an existing token's rows with ``init_from`` (``{new token: old token}``, e.g.
    ``{"<|eot_id|>": "<|im_end|>"}``; see :func:`analog_tokens`), input and output embeddings alike.
    Generation stops at ``<|eot_id|>`` or ``<|endconversation|>``; sampling defaults follow
    UserLM-8b (temperature 0.6, top-p 0.9).
    """
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    if init_from:
        import torch

        with torch.no_grad():
            for new, old in init_from.items():
                new_id, old_id = _token_id(tokenizer, new), _token_id(tokenizer, old)
                model.get_input_embeddings().weight[new_id] = model.get_input_embeddings().weight[old_id]
                output = model.get_output_embeddings()
                if output is not None and output.weight is not model.get_input_embeddings().weight:
                    output.weight[new_id] = output.weight[old_id]
    eot, end = _token_id(tokenizer, END_OF_TURN), _token_id(tokenizer, END_CONVERSATION)
    model.config.bos_token_id = _token_id(tokenizer, BEGIN_OF_TEXT)
    model.config.eos_token_id = [eot, end]
    model.config.pad_token_id = tokenizer.pad_token_id
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = model.config.bos_token_id, [eot, end], tokenizer.pad_token_id
    gen.do_sample, gen.temperature, gen.top_p = True, 0.6, 0.9


def analog_tokens(added: Sequence[str], old_bos: str | None, old_eos: str | None) -> dict[str, str]:
    """``init_from`` for :func:`prepare_model`: end tokens start as the old EOS, headers as the old BOS.

    Args:
        added: the tokens :func:`prepare_tokenizer` added.
        old_bos: the tokenizer's BOS before :func:`prepare_tokenizer` (e.g. SmolLM2's ``<|im_start|>``).
        old_eos: the tokenizer's EOS before it (e.g. ``<|im_end|>``).
    """
    out = {}
    for token in added:
        source = old_eos if token in (END_OF_TURN, END_CONVERSATION) else old_bos
        if source and source not in added:
            out[token] = source
    return out


def _chat_messages(conv: Conversation) -> list[dict]:
    """The conversation without system messages (the intent replaces them)."""
    return [m for m in conv.messages if m["role"] != "system"]


def flip_conversation(
    conv: Conversation, intent: str, tokenizer, config: FlipConfig | None = None
) -> FlippedExample | None:
    """Build the User LM training example of ``conv`` with ``intent`` as the system message.

    Args:
        conv: a filtered conversation (user first, alternating; see :mod:`userlm_env.flip.data`).
        intent: the high-level intent written for it.
        tokenizer: a tokenizer prepared with :func:`prepare_tokenizer`.
        config: lengths and separator.

    Returns:
        The example, or None when not even part of the first user turn fits in ``max_length``.

    Raises:
        ValueError: the tokenizer lacks the UserLM tokens, or ``conv`` does not start with a user turn.
    """
    config = config or FlipConfig()
    eot, end = _token_id(tokenizer, END_OF_TURN), _token_id(tokenizer, END_CONVERSATION)
    bos = _token_id(tokenizer, BEGIN_OF_TEXT)
    sep = config.separator
    messages = _chat_messages(conv)
    if not messages or messages[0]["role"] != "user":
        raise ValueError(f"conversation {conv.id} must start with a user turn (filter it first)")

    def header(role: str) -> list[int]:
        return _encode(tokenizer, f"{START_HEADER}{role}{END_HEADER}{sep}")

    intent_ids = _encode_content(tokenizer, intent.strip())[: config.max_intent_tokens]
    ids: list[int] = [bos, *header("system"), *intent_ids, eot]
    labels: list[int] = [IGNORE_INDEX] * len(ids)
    spans: list[tuple[int, int, int]] = []
    user_index = 0
    complete = True
    for message in messages:
        is_user = message["role"] == "user"
        limit = config.max_user_tokens if is_user else config.max_assistant_tokens
        content = _encode_content(tokenizer, message["content"].strip())
        truncated = len(content) > limit
        content = content[:limit]
        head = header(message["role"])
        group = [*head, *content, eot]
        room = config.max_length - len(ids)
        if len(group) > room:
            complete = False
            if is_user and user_index == 0 and room > len(head):  # hard-cut a first turn that alone overflows
                content = content[: room - len(head)]
                spans.append((user_index, len(ids) + len(head), len(ids) + len(head) + len(content)))
                labels += [IGNORE_INDEX] * len(head) + content
                ids += [*head, *content]
                user_index += 1
            break
        if is_user:
            start = len(ids) + len(head)
            spans.append((user_index, start, start + len(content)))
            labels += [IGNORE_INDEX] * len(head) + content + [IGNORE_INDEX if truncated else eot]
            user_index += 1
        else:
            labels += [IGNORE_INDEX] * len(group)
        ids += group
    ended = False
    if complete and config.end_of_conversation and messages[-1]["role"] == "assistant":
        tail = [*header("user"), end]
        if len(ids) + len(tail) <= config.max_length:
            labels += [IGNORE_INDEX] * (len(tail) - 1) + [end]
            ids += tail
            ended = True
    if not spans or all(label == IGNORE_INDEX for label in labels):
        return None
    return FlippedExample(
        id=conv.id, input_ids=ids, labels=labels, user_spans=spans, ended=ended, user_turns=user_index
    )


def prompted_user_example(
    conv: Conversation,
    intent: str,
    tokenizer,
    config: FlipConfig | None = None,
    system_template: str = PROMPTED_USER_SYSTEM,
) -> FlippedExample | None:
    """Score layout for a *prompted* assistant model playing the user (the baseline of the paper).

    The model's own chat template is used with roles swapped: the system prompt asks it to play
    the user with ``intent``; the real user's turns are its ``assistant`` turns (what it writes) and
    the real assistant's turns are ``user`` turns. Content is truncated exactly as in
    :func:`flip_conversation`, so the user-content token ids are the same when both tokenizers
    share a vocabulary, and per-turn perplexities compare like with like. After the last reply
    the target is the stated end marker (:data:`PROMPTED_END_MARKER`).

    Returns:
        The example (``labels`` on the real user turns and the end marker), or None if nothing fits.

    Raises:
        ValueError: the tokenizer has no chat template or the template changes message contents.
    """
    config = config or FlipConfig()
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("the prompted baseline needs a tokenizer with a chat_template (an instruct model)")
    messages = _chat_messages(conv)
    swapped = [{"role": "system", "content": system_template.format(intent=intent.strip())}]
    contents: list[list[int]] = []
    for message in messages:
        is_user = message["role"] == "user"
        limit = config.max_user_tokens if is_user else config.max_assistant_tokens
        ids = _encode_content(tokenizer, message["content"].strip())[:limit]
        contents.append(ids)
        swapped.append({"role": "assistant" if is_user else "user", "content": tokenizer.decode(ids).strip()})
    add_end = config.end_of_conversation and messages and messages[-1]["role"] == "assistant"
    if add_end:
        swapped.append({"role": "assistant", "content": PROMPTED_END_MARKER})
    text = tokenizer.apply_chat_template(swapped, tokenize=False)
    ids: list[int] = []
    labels: list[int] = []
    spans: list[tuple[int, int, int]] = []
    cursor = 0
    user_index = 0
    ended = False
    for k, message in enumerate(swapped[1:]):
        is_target = message["role"] == "assistant"
        at = text.find(message["content"], cursor)
        if at < 0:
            raise ValueError("the chat template changed a message's content; cannot locate it for scoring")
        before = _structure(tokenizer, text[cursor:at], swapped[0]["content"] if k == 0 else None)
        is_end = add_end and k == len(swapped) - 2
        content = contents[k] if not is_end else _encode(tokenizer, PROMPTED_END_MARKER)
        if len(ids) + len(before) + len(content) > config.max_length:
            break
        ids += before
        labels += [IGNORE_INDEX] * len(before)
        if is_target and not is_end:
            spans.append((user_index, len(ids), len(ids) + len(content)))
            user_index += 1
        ids += content
        labels += content if is_target else [IGNORE_INDEX] * len(content)
        ended = ended or is_end
        cursor = at + len(message["content"])
    if not spans:
        return None
    return FlippedExample(
        id=conv.id, input_ids=ids, labels=labels, user_spans=spans, ended=ended, user_turns=user_index
    )


def _structure(tokenizer, text: str, system: str | None) -> list[int]:
    """Template text between two contents; ``system``: a (model-written, untrusted) system content inside it."""
    if system:
        start = text.find(system)
        if start >= 0 and _encode_content(tokenizer, system) != _encode(tokenizer, system):  # it has control strings
            head, tail = text[:start], text[start + len(system) :]
            return _encode(tokenizer, head) + _encode_content(tokenizer, system) + _encode(tokenizer, tail)
    return _encode(tokenizer, text)


def batch_examples(examples: Sequence[FlippedExample], pad_id: int):
    """Right-pad examples into ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
