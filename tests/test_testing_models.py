"""Tests of the tiny offline models of ``userlm_env.testing``."""

from __future__ import annotations

import doctest
import pathlib

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import userlm_env.testing
from userlm_env.testing import (
    PAD_TOKEN,
    TINY_SPECIAL_TOKENS,
    build_tiny_chat_model,
    build_tiny_userlm,
)
from userlm_env.users.template import (
    END_CONVERSATION,
    END_HEADER,
    END_OF_TURN,
    START_HEADER,
    has_userlm_template,
    render_userlm_prompt,
)

SEPARATORS = ["\n\n", "\n"]

HOMEWORK = [
    {"role": "system", "content": "You want help with your math homework about eggs."},
    {"role": "user", "content": "I need help with my homework"},
]
GOODBYE = [
    {"role": "system", "content": "Ask how many eggs are left, then leave."},
    {"role": "user", "content": "how many eggs are left?"},
    {"role": "assistant", "content": "There are 9 eggs left."},
    {"role": "user", "content": END_CONVERSATION},
]
FOLLOW_UP = [
    {"role": "system", "content": "Find the total cost of the books."},
    {"role": "user", "content": "what do 2 books cost"},
    {"role": "assistant", "content": "Which books do you mean?"},
    {"role": "user", "content": "the math ones, 12 dollars each"},
]

CONVERSATIONS = {
    "system-user-assistant": [
        {"role": "system", "content": "You want to know how much Janet makes at the market."},
        {"role": "user", "content": "how much does janet make"},
        {"role": "assistant", "content": "Could you tell me how many eggs she sells?"},
    ],
    "unicode-and-whitespace": [
        {"role": "system", "content": "  Intent: café ünïcødé, 東京, emoji 🙂 \n"},
        {"role": "user", "content": "naïve question — ¿qué?"},
        {"role": "assistant", "content": "\tΣ = 42\n\n"},
    ],
    "system-only": [{"role": "system", "content": "Ask for a haiku about the sea."}],
    "no-system": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "line one\nline two"},
        {"role": "assistant", "content": "Sure."},
    ],
}


# ---------------------------------------------------------------------------------------------
# Session-scoped builds (the pattern documented in userlm_env.testing)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=SEPARATORS, ids=["sep2", "sep1"])
def userlm_build(request, tmp_path_factory) -> tuple[str, pathlib.Path]:
    """An untrained tiny UserLM for each separator, as ``(separator, path)``."""
    return request.param, build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm"), separator=request.param)


@pytest.fixture
def userlm_path(userlm_build) -> pathlib.Path:
    """The directory of :func:`userlm_build`."""
    return userlm_build[1]


@pytest.fixture(scope="module")
def chat_path(tmp_path_factory) -> pathlib.Path:
    """An untrained tiny assistant chat model."""
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny_chat"))


@pytest.fixture(scope="module")
def trained_path(tmp_path_factory) -> pathlib.Path:
    """A tiny UserLM trained on three conversations."""
    return build_tiny_userlm(
        tmp_path_factory.mktemp("tiny_userlm_trained"), train_on=[HOMEWORK, GOODBYE, FOLLOW_UP], train_steps=200
    )


def _greedy_completion(model, tokenizer, messages: list[dict[str, str]], max_new_tokens: int = 24) -> list[int]:
    """Greedy new token ids after ``messages`` rendered with ``add_generation_prompt``."""
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens)
    return out[0, inputs["input_ids"].shape[1] :].tolist()


# ---------------------------------------------------------------------------------------------
# (a) tokenizer and chat templates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["userlm", "chat"])
def test_special_tokens_are_single_ids(kind, userlm_path, chat_path):
    """Every UserLM special token (and the pad token) encodes to exactly one distinct id."""
    tok = AutoTokenizer.from_pretrained(userlm_path if kind == "userlm" else chat_path)
    ids = []
    for token in TINY_SPECIAL_TOKENS:
        encoded = tok.encode(token, add_special_tokens=False)
        assert encoded == [tok.convert_tokens_to_ids(token)], token
        ids.append(encoded[0])
        # also inside text, with no space around it
        assert encoded[0] in tok.encode(f"ok{token}ok", add_special_tokens=False)
    assert len(set(ids)) == len(ids)
    assert tok.bos_token == "<|begin_of_text|>"
    assert tok.eos_token == END_OF_TURN
    assert tok.pad_token == PAD_TOKEN
    assert tok.padding_side == "left"


def test_tokenizer_encodes_any_text(userlm_path):
    """Byte-level BPE: arbitrary Unicode round-trips, and plain encoding prepends bos like Llama-3."""
    tok = AutoTokenizer.from_pretrained(userlm_path)
    text = "Ünïcødé 東京 🙂 ∑x² — tabs\tand\nnewlines  "
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    assert tok.encode(text)[0] == tok.bos_token_id
    assert 300 <= len(tok) <= 1100
    # special tokens are dropped by skip_special_tokens
    ids = tok.encode(f"{START_HEADER}user{END_HEADER}\n\nbye{END_CONVERSATION}{END_OF_TURN}")
    assert tok.decode(ids, skip_special_tokens=True) == "user\n\nbye"


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_userlm_template_matches_render(name, userlm_build):
    """The saved chat template renders exactly like ``render_userlm_prompt`` and opens a user turn."""
    separator, path = userlm_build
    tok = AutoTokenizer.from_pretrained(path)
    messages = CONVERSATIONS[name]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == render_userlm_prompt(messages, separator)
    assert text.endswith(f"{START_HEADER}user{END_HEADER}{separator}")
    assert has_userlm_template(tok)


def test_chat_model_template_is_llama3_assistant(chat_path):
    """The chat model opens an assistant turn, is not UserLM-like, and marks assistant tokens."""
    tok = AutoTokenizer.from_pretrained(chat_path)
    assert not has_userlm_template(tok)
    messages = CONVERSATIONS["system-user-assistant"]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert (
        text
        == render_userlm_prompt(messages, "\n\n").removesuffix(f"{START_HEADER}user{END_HEADER}\n\n")
        + f"{START_HEADER}assistant{END_HEADER}\n\n"
    )
    out = tok.apply_chat_template(messages, return_assistant_tokens_mask=True, return_dict=True)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == messages[-1]["content"] + END_OF_TURN


def test_module_doctests():
    """The ``>>>`` examples in ``userlm_env.testing`` run."""
    result = doctest.testmod(userlm_env.testing)
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------------------------------------
# (b) model, generation config, batched left-padded generation
# ---------------------------------------------------------------------------------------------


def test_generation_config_has_userlm_defaults(userlm_path, chat_path):
    """Stop on eot/endconversation, sample with temperature 0.6 and top_p 0.9."""
    tok = AutoTokenizer.from_pretrained(userlm_path)
    gen = AutoModelForCausalLM.from_pretrained(userlm_path).generation_config
    assert gen.eos_token_id == [tok.convert_tokens_to_ids(END_OF_TURN), tok.convert_tokens_to_ids(END_CONVERSATION)]
    assert gen.pad_token_id == tok.pad_token_id
    assert (gen.do_sample, gen.temperature, gen.top_p) == (True, 0.6, 0.9)
    chat_gen = AutoModelForCausalLM.from_pretrained(chat_path).generation_config
    assert chat_gen.eos_token_id == [tok.convert_tokens_to_ids(END_OF_TURN)]


def test_generate_batch_with_left_padding(userlm_path):
    """A batch of two prompts of different lengths is left-padded and generates (sampling on)."""
    tok = AutoTokenizer.from_pretrained(userlm_path)
    model = AutoModelForCausalLM.from_pretrained(userlm_path)
    config = model.config
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 64, 2)
    assert config.vocab_size == len(tok)
    prompts = [
        tok.apply_chat_template(CONVERSATIONS["system-only"], add_generation_prompt=True, tokenize=False),
        tok.apply_chat_template(CONVERSATIONS["no-system"], add_generation_prompt=True, tokenize=False),
    ]
    batch = tok(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
    lengths = batch["attention_mask"].sum(dim=1)
    assert lengths[0] < lengths[1]
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1  # left padding
    assert batch["input_ids"][0, 0] == tok.pad_token_id
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=8)
    assert out.shape[0] == 2 and 1 <= out.shape[1] - batch["input_ids"].shape[1] <= 8


# ---------------------------------------------------------------------------------------------
# (c) training to a predictable output
# ---------------------------------------------------------------------------------------------


def test_trained_model_reproduces_targets(trained_path):
    """Greedy generation gives each trained target, ending at eot, or endconversation first."""
    tok = AutoTokenizer.from_pretrained(trained_path)
    model = AutoModelForCausalLM.from_pretrained(trained_path)
    eot = tok.convert_tokens_to_ids(END_OF_TURN)
    end_conv = tok.convert_tokens_to_ids(END_CONVERSATION)

    new = _greedy_completion(model, tok, HOMEWORK[:-1])
    assert new[-1] == eot
    assert tok.decode(new[:-1]) == "I need help with my homework"

    new = _greedy_completion(model, tok, FOLLOW_UP[:-1])
    assert tok.decode(new) == "the math ones, 12 dollars each" + END_OF_TURN

    new = _greedy_completion(model, tok, GOODBYE[:-1])
    assert new[0] == end_conv
    assert new == [end_conv]  # generation stops there: it is an eos of the generation config


def test_trained_model_batched_left_padded_greedy(trained_path):
    """Left-padded batched greedy generation gives the same targets as one prompt at a time."""
    tok = AutoTokenizer.from_pretrained(trained_path)
    model = AutoModelForCausalLM.from_pretrained(trained_path)
    prompts = [
        tok.apply_chat_template(conv[:-1], add_generation_prompt=True, tokenize=False) for conv in (HOMEWORK, FOLLOW_UP)
    ]
    batch = tok(prompts, padding=True, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**batch, do_sample=False, max_new_tokens=24)
    texts = tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert texts == [HOMEWORK[-1]["content"], FOLLOW_UP[-1]["content"]]


def test_build_is_deterministic_and_cached(trained_path, tmp_path):
    """Same arguments give identical files; a finished build directory is reused as a cache."""
    rng_state = torch.get_rng_state()
    num_threads = torch.get_num_threads()
    again = build_tiny_userlm(tmp_path / "again", train_on=[HOMEWORK, GOODBYE, FOLLOW_UP], train_steps=200)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global RNG is untouched
    assert torch.get_num_threads() == num_threads
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json"):
        assert (again / name).read_bytes() == (trained_path / name).read_bytes(), name

    weights = again / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert build_tiny_userlm(again, train_on=[HOMEWORK, GOODBYE, FOLLOW_UP], train_steps=200) == again
    assert weights.stat().st_mtime_ns == mtime  # reused, not rebuilt
    build_tiny_userlm(again, seed=1)  # different arguments: rebuilt in place
    assert weights.read_bytes() != (trained_path / "model.safetensors").read_bytes()


def test_chat_model_can_be_trained(tmp_path):
    """``build_tiny_chat_model`` learns a final assistant reply the same way."""
    conv = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "The answer is 5."}]
    path = build_tiny_chat_model(tmp_path / "chat", train_on=[conv], train_steps=120)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert tok.decode(_greedy_completion(model, tok, conv[:-1])) == "The answer is 5." + END_OF_TURN


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"train_on": [HOMEWORK]}, "train_steps=0"),
        ({"train_steps": 10}, "train_on is empty"),
        ({"train_on": [HOMEWORK[:1]], "train_steps": 10}, "must end with the 'user' message"),
        ({"train_on": [HOMEWORK], "train_steps": -1}, "train_steps must be >= 0"),
    ],
)
def test_bad_training_arguments(kwargs, match, tmp_path):
    """Inconsistent training arguments raise a ValueError that names the problem."""
    with pytest.raises(ValueError, match=match):
        build_tiny_userlm(tmp_path, **kwargs)
