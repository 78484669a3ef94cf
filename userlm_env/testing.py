"""Tiny, offline stand-ins for UserLM-8b and for an assistant chat model, for fast unit tests.

The real simulated user (``microsoft/UserLM-8b``) is an 8B Llama model that is not reachable
offline and far too slow for unit tests. This module builds, in well under a second on a CPU and
with no network, a *tiny* Llama-architecture causal LM plus a byte-level BPE fast tokenizer that
share UserLM's interface:

* the special tokens ``<|begin_of_text|>`` (bos), ``<|start_header_id|>``,
  ``<|end_header_id|>``, ``<|eot_id|>`` (eos), ``<|endconversation|>`` and a dedicated
  ``<|pad|>``, each encoded as exactly one id;
* UserLM's chat template (:func:`userlm_env.users.template.userlm_chat_template`), which ends
  the prompt by opening a *user* turn, and ``padding_side="left"`` for batched generation;
* a ``generation_config`` with UserLM's defaults: stop on ``<|eot_id|>`` or
  ``<|endconversation|>``, ``do_sample=True``, ``temperature=0.6``, ``top_p=0.9``.

Everything is saved with ``save_pretrained`` so the directory loads like a hub checkpoint with
``AutoTokenizer.from_pretrained(path)`` and ``AutoModelForCausalLM.from_pretrained(path)``.

An untrained tiny model emits gibberish. To get a *predictable* user, pass ``train_on`` (chat
conversations whose last message is the turn to produce) and ``train_steps``: the model is then
fitted, in a few seconds, to reproduce each final message (followed by ``<|eot_id|>``) after the
prompt rendered up to the final header; a target whose content is ``<|endconversation|>`` makes
the model emit that token. :func:`build_tiny_chat_model` does the same for an ordinary
assistant-style (Llama-3) chat model.

Like the real Llama-3 tokenizer, the tokenizer prepends ``<|begin_of_text|>`` when encoding with
``add_special_tokens=True`` (the default); the chat template already writes it, so encode rendered
prompts with ``add_special_tokens=False`` (``apply_chat_template(..., tokenize=True)`` does this).

Caching: building is cheap, but training takes seconds, so build each model once per test
session from a session-scoped fixture and share the directory::

    import pytest
    from userlm_env.testing import build_tiny_userlm

    @pytest.fixture(scope="session")
    def tiny_userlm(tmp_path_factory):
        return build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm"))

    @pytest.fixture(scope="session")
    def opener_i_userlm(tmp_path_factory):
        convs = [[{"role": "system", "content": "Ask for help."}, {"role": "user", "content": "I need help"}]]
        return build_tiny_userlm(tmp_path_factory.mktemp("opener_i"), train_on=convs, train_steps=200)

Each build writes a fingerprint of its arguments (``tiny_build.json``) last; calling a builder
again on a directory that holds a complete build with the same arguments returns at once without
rebuilding, so a persistent directory (e.g. under ``~/.cache``) also works as a cross-session
cache. Do not build into the same directory from several processes at the same time.

Determinism: a build depends only on its arguments. Weights are initialised and trained inside
:func:`torch.random.fork_rng` after ``torch.manual_seed(seed)``, so the caller's global torch RNG
state is left untouched. Training is full-batch with no dropout and runs on one intra-op thread
(``torch.set_num_threads(1)`` for its duration, restored afterwards: tiny matrices only lose to
threading), so results are reproducible run to run; across CPU types or library versions they
agree up to float rounding.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from userlm_env.users.template import (
    BEGIN_OF_TEXT,
    DEFAULT_SEPARATOR,
    END_CONVERSATION,
    END_HEADER,
    END_OF_TURN,
    SPECIAL_TOKENS,
    START_HEADER,
    userlm_chat_template,
)

__all__ = [
    "LLAMA3_CHAT_TEMPLATE",
    "PAD_TOKEN",
    "TINY_MODEL_CONFIG",
    "TINY_SPECIAL_TOKENS",
    "build_tiny_chat_model",
    "build_tiny_tokenizer",
    "build_tiny_userlm",
]

PAD_TOKEN = "<|pad|>"
"""Dedicated padding token of the tiny tokenizers (never generated, never an eos)."""

TINY_SPECIAL_TOKENS: tuple[str, ...] = (*SPECIAL_TOKENS, PAD_TOKEN)
"""Every special token of the tiny tokenizers, in id order (ids 0..5)."""

TINY_MODEL_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}
"""``LlamaConfig`` sizes of the tiny models (about 0.14M parameters with the ~530-token
vocabulary; grouped-query attention as in Llama-3.1)."""

LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '" + START_HEADER + "' + message['role'] + '" + END_HEADER + "\\n\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] | trim }}{{ '" + END_OF_TURN + "' }}{% endgeneration %}"
    "{% else %}"
    "{{ message['content'] | trim }}{{ '" + END_OF_TURN + "' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '" + START_HEADER + "assistant" + END_HEADER + "\\n\\n' }}{% endif %}"
)
"""An ordinary Llama-3 style assistant chat template (opens an *assistant* turn on
``add_generation_prompt``). Assistant turns are wrapped in ``{% generation %}`` so that
``apply_chat_template(..., return_assistant_tokens_mask=True)`` works (e.g. TRL's
``assistant_only_loss``); the rendered text is the plain Llama-3 format."""

_BUILD_VERSION = 1  # bump when the build recipe changes, so cached directories are rebuilt
_FINGERPRINT_FILE = "tiny_build.json"
_BPE_VOCAB_SIZE = 1024
_TRAIN_LR = 3e-3

# A small built-in English corpus for the BPE merges: chat-like requests, math word problems,
# and a little code, so that common words of the env's conversations become single tokens.
_CORPUS = """\
system user assistant system user assistant system user assistant
Hello! Hi there. Hey, can you help me? Thanks a lot, that was really helpful. Thank you so much.
I need help with my homework. I have a question about my math homework. Can you help me with this problem?
You are a helpful assistant. Here is the answer. Here is what I found. Let me explain step by step.
What is the total? How much money does she make? How many apples are left? How long will it take?
She sells 16 eggs a day and eats 3 of them for breakfast. She bakes muffins for her friends every day with 4.
He buys 2 books for $12 each and a pen for $3. How much does he spend in total? The answer is 27 dollars.
A train travels 60 miles per hour for 3 hours. How far does it go? It goes 180 miles.
There are 24 students in the class and half of them are girls. How many boys are there?
The store had 120 shirts and sold 45 of them on Monday and 30 on Tuesday. How many shirts remain?
Each box holds 6 cans. If we have 7 boxes, how many cans do we have? We have 42 cans in total.
John earns 15 dollars an hour and works 8 hours a day, 5 days a week. What does he earn per week?
Oh wait, I forgot to mention that the price went up by 10 percent. Also, the discount is 20 percent.
Actually, it is every week, not every day. Sorry, I meant the second one. No, that is not what I asked.
Okay, so what is the final answer? Can you just give me the number? Please show your work.
Write a Python function that returns the sum of a list of numbers. def add(a, b): return a + b
The function should handle an empty list and return zero. Please write tests for the function.
I want to write a short story about a dog who lives in the city and loves the rain.
Could you make it shorter? Make it more formal, please. Can you translate this into French?
My code does not work and I get an error when I run it. Here is the error message I get.
What do you think about this idea? I think it is a good plan but I am not sure about the cost.
We need to find the number of hours they worked together this month and the price per hour.
The recipe needs 3 cups of flour, 2 eggs, and 1 cup of milk for 12 pancakes.
If the first number is 5 and the second is 8, their product is 40 and their sum is 13.
Great, that makes sense now. Perfect, thanks! Got it. That is correct. That is wrong, try again.
One, two, three, four, five, six, seven, eight, nine, ten, hundred, thousand, half, twice, percent.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday morning afternoon evening night today.
"""


# ---------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------


def build_tiny_tokenizer(
    chat_template: str,
    *,
    vocab_words: Iterable[str] = (),
    extra_texts: Iterable[str] = (),
    vocab_size: int = _BPE_VOCAB_SIZE,
) -> PreTrainedTokenizerFast:
    """Build a small byte-level BPE fast tokenizer with UserLM's special tokens.

    The tokenizer encodes any text (byte-level fallback), has the special tokens of
    :data:`TINY_SPECIAL_TOKENS` as single ids ``0..5`` (bos ``<|begin_of_text|>``, eos
    ``<|eot_id|>``, pad ``<|pad|>``), prepends bos when ``add_special_tokens=True`` (like Llama-3),
    and pads on the left. Deterministic: the same arguments give the same vocabulary.

    Args:
        chat_template: Jinja chat template stored as ``tokenizer.chat_template``.
        vocab_words: extra words to favour in the BPE merges (so they become single tokens).
        extra_texts: extra training text for the merges (e.g. the conversations a model is
            trained on, so that their words encode to few tokens).
        vocab_size: upper bound on the vocabulary size; a small corpus gives fewer merges.

    Returns:
        The tokenizer (a ``PreTrainedTokenizerFast``; save it with ``save_pretrained``).
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(TINY_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = [w for w in vocab_words if w.strip()]
    corpus = [*_CORPUS.splitlines(), *[" ".join(words)] * 3, *[w for t in extra_texts for w in [t, t]]]
    backend.train_from_iterator(corpus, trainer)
    bos_id = backend.token_to_id(BEGIN_OF_TEXT)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BEGIN_OF_TEXT} $A",
        pair=f"{BEGIN_OF_TEXT} $A {BEGIN_OF_TEXT} $B",
        special_tokens=[(BEGIN_OF_TEXT, bos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BEGIN_OF_TEXT,
        eos_token=END_OF_TURN,
        pad_token=PAD_TOKEN,
        padding_side="left",
        model_max_length=TINY_MODEL_CONFIG["max_position_embeddings"],
        chat_template=chat_template,
    )


# ---------------------------------------------------------------------------------------------
# Public builders
# ---------------------------------------------------------------------------------------------


def build_tiny_userlm(
    path: str | pathlib.Path,
    *,
    separator: str = DEFAULT_SEPARATOR,
    seed: int = 0,
    train_on: Sequence[Sequence[dict[str, str]]] | None = None,
    train_steps: int = 0,
    vocab_words: Iterable[str] = (),
) -> pathlib.Path:
    r"""Build and save a tiny UserLM-like model (Llama architecture) and its tokenizer.

    The directory gets ``config.json``, the weights, ``generation_config.json``, the tokenizer
    files with UserLM's chat template (prompt ends by opening a ``user`` turn) and a fingerprint;
    see the module docstring for the exact interface and the caching behaviour.

    Args:
        path: output directory (created if needed).
        separator: text between a role header and the content in the chat template.
        seed: seed of the weight initialisation and of training (the global RNG is untouched).
        train_on: conversations in chat format whose last message is the ``user`` turn to learn;
            the prompt is the conversation before it, rendered with ``add_generation_prompt``.
            A last message whose content is exactly ``<|endconversation|>`` teaches the model to
            emit that token; any other target is followed by ``<|eot_id|>``. Their text is also
            added to the tokenizer's training corpus.
        train_steps: full-batch AdamW steps (lr 3e-3) on ``train_on``; 100-300 memorise a few
            short targets in seconds. Required (> 0) when ``train_on`` is given.
        vocab_words: extra words to favour as single tokens in the tokenizer.

    Returns:
        ``path`` as a :class:`pathlib.Path`, loadable with ``AutoModelForCausalLM`` /
        ``AutoTokenizer``.

    Raises:
        ValueError: if ``train_on`` and ``train_steps`` disagree or a conversation is malformed.

    Example:
        >>> import tempfile
        >>> from transformers import AutoTokenizer
        >>> path = build_tiny_userlm(tempfile.mkdtemp())
        >>> tok = AutoTokenizer.from_pretrained(path)
        >>> prompt = tok.apply_chat_template([{"role": "system", "content": "Ask about eggs."}],
        ...                                  tokenize=False, add_generation_prompt=True)
        >>> prompt.endswith("<|start_header_id|>user<|end_header_id|>\n\n")
        True
    """
    return _build(
        path,
        kind="userlm",
        chat_template=userlm_chat_template(separator),
        eos_tokens=(END_OF_TURN, END_CONVERSATION),
        target_role="user",
        seed=seed,
        train_on=train_on,
        train_steps=train_steps,
        vocab_words=vocab_words,
        extra_fingerprint={"separator": separator},
    )


def build_tiny_chat_model(
    path: str | pathlib.Path,
    seed: int = 0,
    *,
    train_on: Sequence[Sequence[dict[str, str]]] | None = None,
    train_steps: int = 0,
    vocab_words: Iterable[str] = (),
) -> pathlib.Path:
    """Build and save a tiny assistant-style chat model (Llama-3 template) and its tokenizer.

    Same model and tokenizer recipe as :func:`build_tiny_userlm`, but the chat template is
    :data:`LLAMA3_CHAT_TEMPLATE` (``add_generation_prompt`` opens an ``assistant`` turn) and
    generation stops at ``<|eot_id|>`` only. Meant for tests of assistant policies and training.

    Args:
        path: output directory (created if needed).
        seed: seed of the weight initialisation and of training (the global RNG is untouched).
        train_on: conversations whose last message is the ``assistant`` reply to learn (see
            :func:`build_tiny_userlm`).
        train_steps: full-batch AdamW steps on ``train_on``; required (> 0) when it is given.
        vocab_words: extra words to favour as single tokens in the tokenizer.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: if ``train_on`` and ``train_steps`` disagree or a conversation is malformed.
    """
    return _build(
        path,
        kind="chat",
        chat_template=LLAMA3_CHAT_TEMPLATE,
        eos_tokens=(END_OF_TURN,),
        target_role="assistant",
        seed=seed,
        train_on=train_on,
        train_steps=train_steps,
        vocab_words=vocab_words,
        extra_fingerprint={},
    )


# ---------------------------------------------------------------------------------------------
# Shared implementation
# ---------------------------------------------------------------------------------------------


def _build(
    path: str | pathlib.Path,
    *,
    kind: str,
    chat_template: str,
    eos_tokens: tuple[str, ...],
    target_role: str,
    seed: int,
    train_on: Sequence[Sequence[dict[str, str]]] | None,
    train_steps: int,
    vocab_words: Iterable[str],
    extra_fingerprint: dict[str, Any],
) -> pathlib.Path:
    """Build, optionally train, and save a tiny model; reuse ``path`` if already built alike."""
    path = pathlib.Path(path)
    conversations = _validate_training_args(train_on, train_steps, target_role)
    words = list(vocab_words)
    fingerprint = {
        "build_version": _BUILD_VERSION,
        "kind": kind,
        "seed": seed,
        "train_on": conversations,
        "train_steps": train_steps,
        "vocab_words": words,
        **extra_fingerprint,
    }
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    fingerprint_path = path / _FINGERPRINT_FILE
    if fingerprint_path.is_file() and (path / "config.json").is_file():
        try:
            if json.loads(fingerprint_path.read_text())["digest"] == digest:
                return path
        except (ValueError, KeyError):
            pass  # unreadable fingerprint: rebuild
    fingerprint_path.unlink(missing_ok=True)

    texts = [m["content"] for conv in conversations for m in conv]
    tokenizer = build_tiny_tokenizer(chat_template, vocab_words=words, extra_texts=texts)
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in eos_tokens]
    final_loss: float | None = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _new_model(tokenizer, eos_ids)
        if conversations:
            final_loss = _fit_final_turns(model, tokenizer, conversations, steps=train_steps)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        temperature=0.6,
        top_p=0.9,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    fingerprint_path.write_text(
        json.dumps({"digest": digest, "final_train_loss": final_loss, **fingerprint}, indent=1, ensure_ascii=False)
    )
    return path


def _validate_training_args(
    train_on: Sequence[Sequence[dict[str, str]]] | None, train_steps: int, target_role: str
) -> list[list[dict[str, str]]]:
    """Check ``train_on``/``train_steps`` and return the conversations as plain lists of dicts."""
    conversations = [[{"role": m["role"], "content": m["content"]} for m in conv] for conv in train_on or ()]
    if train_steps < 0:
        raise ValueError(f"train_steps must be >= 0, got {train_steps}")
    if conversations and train_steps == 0:
        raise ValueError(
            f"train_on has {len(conversations)} conversations but train_steps=0; pass e.g. train_steps=200"
        )
    if train_steps > 0 and not conversations:
        raise ValueError(f"train_steps={train_steps} but train_on is empty; pass conversations to train on")
    for i, conv in enumerate(conversations):
        if not conv or conv[-1]["role"] != target_role:
            last = conv[-1]["role"] if conv else None
            raise ValueError(
                f"train_on[{i}] must end with the {target_role!r} message to learn; its last role is {last!r}"
            )
        for m in conv:
            if not isinstance(m["role"], str) or not isinstance(m["content"], str):
                raise ValueError(f"train_on[{i}] has a message whose role/content is not a str: {m!r}")
    return conversations


def _new_model(tokenizer: PreTrainedTokenizerFast, eos_ids: list[int]) -> LlamaForCausalLM:
    """A randomly initialised tiny Llama model (seed the RNG before calling)."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_ids if len(eos_ids) > 1 else eos_ids[0],
        pad_token_id=tokenizer.pad_token_id,
        **TINY_MODEL_CONFIG,
    )
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def _fit_final_turns(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    conversations: list[list[dict[str, str]]],
    *,
    steps: int,
    lr: float = _TRAIN_LR,
) -> float:
    """Teach ``model`` each conversation's last message after the prompt of the ones before it.

    The prompt is ``apply_chat_template(conv[:-1], add_generation_prompt=True)``; the target is
    the last message's (stripped) content encoded with special tokens recognised, followed by
    ``<|eot_id|>`` unless it already ends with ``<|endconversation|>``. The loss is only on the
    target tokens. Full batch, AdamW, constant lr, one intra-op thread; draws nothing from the
    torch RNG (the Llama model has no dropout).

    Returns:
        The loss of the last step.
    """
    eot_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    end_conv_id = tokenizer.convert_tokens_to_ids(END_CONVERSATION)
    examples: list[tuple[list[int], list[int]]] = []
    for conv in conversations:
        prompt = tokenizer.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        target_ids = tokenizer.encode(conv[-1]["content"].strip(), add_special_tokens=False)
        if not target_ids or target_ids[-1] != end_conv_id:
            target_ids.append(eot_id)
        examples.append((prompt_ids, target_ids))

    length = max(len(p) + len(t) for p, t in examples)
    input_ids = torch.full((len(examples), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), length), -100, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, (prompt_ids, target_ids) in enumerate(examples):  # right padding: positions start at 0
        ids = prompt_ids + target_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, len(prompt_ids) : len(ids)] = torch.tensor(target_ids)
        attention_mask[row, : len(ids)] = 1

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    loss = torch.tensor(float("nan"))
    # Matrices this small only lose to intra-op threading (several times slower, far worse on a
    # busy machine); one thread also makes the result independent of the machine's core count.
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(num_threads)
        model.eval()
    return float(loss.detach())
