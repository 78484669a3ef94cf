"""Flipping conversations into User LM examples: masking, the end-of-conversation token, the template."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from userlm_env.backends.models import BUNDLED_SMOLLM2, load_model
from userlm_env.flip.data import Conversation
from userlm_env.flip.flipping import (
    IGNORE_INDEX,
    PROMPTED_END_MARKER,
    FlipConfig,
    batch_examples,
    flip_conversation,
    prepare_model,
    prepare_tokenizer,
    prompted_user_example,
)
from userlm_env.testing import build_tiny_userlm
from userlm_env.users.template import (
    END_CONVERSATION,
    END_OF_TURN,
    SPECIAL_TOKENS,
    has_userlm_template,
    parse_userlm_prompt,
    render_userlm_prompt,
    userlm_chat_template,
)

TURNS = [
    ("user", "how do i sort a list in python by a key"),
    ("assistant", "Use sorted(items, key=lambda x: x.name). It returns a new list."),
    ("user", "and in reverse order?"),
    ("assistant", "Pass reverse=True as well."),
]
INTENT = "You want to sort Python lists."


def smollm2_dir():
    """The bundled SmolLM2-135M converted to a transformers dir (converted once, then cached)."""
    return load_model(BUNDLED_SMOLLM2, dtype="float32", device="cpu").model.name_or_path


def make_conv(turns=TURNS, cid="t1"):
    return Conversation(id=cid, messages=[{"role": r, "content": c} for r, c in turns], source="test")


@pytest.fixture(scope="module")
def smol_tokenizer():
    """SmolLM2's own tokenizer (no UserLM tokens), prepared for flipping."""
    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    added = prepare_tokenizer(tok)
    tok.added_for_test = added
    return tok


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random Llama with UserLM tokens, its tokenizer prepared with the flip separator."""
    path = build_tiny_userlm(tmp_path_factory.mktemp("tiny_userlm"), seed=0)
    tok = AutoTokenizer.from_pretrained(path)
    prepare_tokenizer(tok)
    model = AutoModelForCausalLM.from_pretrained(path)
    prepare_model(model, tok)
    model.eval()
    return model, tok


def test_end_token_added_as_single_id_and_embeddings_resized(smol_tokenizer):
    """<|endconversation|> and the header tokens are new single ids; the model's embeddings grow to match."""
    tok = smol_tokenizer
    assert set(tok.added_for_test) == set(SPECIAL_TOKENS)
    for token in SPECIAL_TOKENS:
        ids = tok.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and ids[0] >= 49152, token
    end_id = tok.convert_tokens_to_ids(END_CONVERSATION)
    assert tok.encode(f"thanks{END_CONVERSATION}", add_special_tokens=False)[-1] == end_id
    assert prepare_tokenizer(tok) == []  # idempotent
    assert tok.bos_token == "<|begin_of_text|>" and tok.eos_token == END_OF_TURN and tok.pad_token == "<|im_end|>"
    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=49152, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    prepare_model(model, tok)
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 49157
    assert model.get_output_embeddings().weight.shape[0] == len(tok)
    assert model.generation_config.eos_token_id == [tok.convert_tokens_to_ids(END_OF_TURN), end_id]


def test_labels_cover_user_turns_only(smol_tokenizer):
    """Labels = each user turn's content + <|eot_id|>, then <|endconversation|>; everything else is -100."""
    tok = smol_tokenizer
    ex = flip_conversation(make_conv(), INTENT, tok)
    assert len(ex.input_ids) == len(ex.labels)
    trained = [t for t in ex.labels if t != IGNORE_INDEX]
    expected = (
        tok.encode(TURNS[0][1], add_special_tokens=False)
        + [tok.convert_tokens_to_ids(END_OF_TURN)]
        + tok.encode(TURNS[2][1], add_special_tokens=False)
        + [tok.convert_tokens_to_ids(END_OF_TURN)]
        + [tok.convert_tokens_to_ids(END_CONVERSATION)]
    )
    assert trained == expected
    # wherever a label is set it equals the input token at that position (no shift at this level)
    assert all(lab == inp for lab, inp in zip(ex.labels, ex.input_ids) if lab != IGNORE_INDEX)
    # no assistant or intent token is trained
    text_of_trained = tok.decode(trained)
    assert (
        "sorted(" not in text_of_trained
        and "reverse=True" not in text_of_trained
        and "Python lists" not in text_of_trained
    )
    assert [tok.decode(ex.input_ids[s:e]) for _, s, e in ex.user_spans] == [TURNS[0][1], TURNS[2][1]]
    assert ex.ended and ex.user_turns == 2


def test_end_token_only_after_the_last_turn(smol_tokenizer):
    """<|endconversation|> appears once, as the final token, right after the last assistant reply's user header."""
    tok = smol_tokenizer
    end_id = tok.convert_tokens_to_ids(END_CONVERSATION)
    ex = flip_conversation(make_conv(), INTENT, tok)
    assert ex.input_ids.count(end_id) == 1 and ex.input_ids[-1] == end_id and ex.labels[-1] == end_id
    assert tok.decode(ex.input_ids).endswith(
        f"Pass reverse=True as well.{END_OF_TURN}<|start_header_id|>user<|end_header_id|>\n{END_CONVERSATION}"
    )
    # a conversation cut by max_length did not end there: no end token
    cut = flip_conversation(make_conv(), INTENT, tok, FlipConfig(max_length=len(ex.input_ids) - 3))
    assert end_id not in cut.input_ids and not cut.ended
    # without a final assistant reply there is nothing to end after
    no_reply = flip_conversation(make_conv(TURNS[:3]), INTENT, tok)
    assert end_id not in no_reply.input_ids and not no_reply.ended
    off = flip_conversation(make_conv(), INTENT, tok, FlipConfig(end_of_conversation=False))
    assert end_id not in off.input_ids


def test_truncation_rules(smol_tokenizer):
    """A truncated user turn keeps its tokens as targets but not its <|eot_id|>; max_length cuts at a turn."""
    tok = smol_tokenizer
    long_user = [("user", "word " * 100), ("assistant", "ok"), ("user", "second question here"), ("assistant", "fine")]
    ex = flip_conversation(make_conv(long_user), INTENT, tok, FlipConfig(max_user_tokens=10, max_length=512))
    _, s, e = ex.user_spans[0]
    assert e - s == 10 and ex.labels[e] == IGNORE_INDEX and ex.input_ids[e] == tok.convert_tokens_to_ids(END_OF_TURN)
    _, s2, e2 = ex.user_spans[1]
    assert ex.labels[e2] == tok.convert_tokens_to_ids(END_OF_TURN)
    short = flip_conversation(make_conv(), INTENT, tok, FlipConfig(max_length=40))
    assert len(short.input_ids) <= 40 and short.user_turns == 1 and not short.ended
    with pytest.raises(ValueError, match="start with a user turn"):
        flip_conversation(make_conv(TURNS[1:]), INTENT, tok)
    with pytest.raises(ValueError, match="max_length"):
        FlipConfig(max_length=0)


def test_template_round_trip_and_training_matches_generation_prompt(smol_tokenizer):
    """Render -> parse gives the messages back; the flipped tokens equal the chat template's at every user turn."""
    tok = smol_tokenizer
    messages = [{"role": "system", "content": INTENT}, *[{"role": r, "content": c} for r, c in TURNS]]
    for separator in ("\n", "\n\n"):
        text = render_userlm_prompt(messages, separator)
        parsed, opens_user = parse_userlm_prompt(text, separator)
        assert parsed == messages and opens_user
    assert tok.chat_template == userlm_chat_template("\n") and has_userlm_template(tok)
    rendered = tok.apply_chat_template(messages, tokenize=False)
    assert rendered == render_userlm_prompt(messages, "\n")
    with pytest.raises(ValueError, match="separator"):
        parse_userlm_prompt(render_userlm_prompt(messages, "\n"), "\n\n")
    ex = flip_conversation(make_conv(), INTENT, tok)
    for k, (_, start, _) in enumerate(ex.user_spans):
        prefix = messages[: 1 + 2 * k]  # system + the turns before user turn k
        prompt = tok.apply_chat_template(prefix, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert ex.input_ids[:start] == list(prompt)


def test_changing_an_assistant_token_leaves_the_loss_unchanged(tiny):
    """Assistant tokens carry no loss: editing the last reply changes nothing; editing a user token does."""
    model, tok = tiny
    config = FlipConfig(end_of_conversation=False)
    ex = flip_conversation(make_conv(), INTENT, tok, config)
    assistant_pos = [i for i, lab in enumerate(ex.labels) if lab == IGNORE_INDEX][-2]  # inside the last reply
    assert ex.input_ids[assistant_pos] not in (tok.convert_tokens_to_ids(END_OF_TURN),)

    def loss(input_ids, labels):
        batch = batch_examples([type(ex)(ex.id, input_ids, labels)], tok.pad_token_id)
        with torch.no_grad():
            return model(**batch).loss.item()

    base = loss(ex.input_ids, ex.labels)
    edited = list(ex.input_ids)
    edited[assistant_pos] = (edited[assistant_pos] + 7) % len(tok)
    assert loss(edited, ex.labels) == base
    # the loss is the mean NLL over exactly the labelled positions
    batch = batch_examples([ex], tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits[0, :-1]
    targets = batch["labels"][0, 1:]
    keep = targets != IGNORE_INDEX
    manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep]).item()
    assert manual == pytest.approx(base, rel=1e-5)
    # control: a user token does matter
    _, s, _ = ex.user_spans[-1]
    changed_labels = list(ex.labels)
    user_edit = list(ex.input_ids)
    user_edit[s] = changed_labels[s] = (user_edit[s] + 7) % len(tok)
    assert loss(user_edit, changed_labels) != base


def test_prompted_baseline_scores_the_same_user_tokens(smol_tokenizer):
    """The prompted-base layout (roles swapped, own chat template) scores the identical user-content token ids."""
    base_tok = AutoTokenizer.from_pretrained(smollm2_dir())
    flipped = flip_conversation(make_conv(), INTENT, smol_tokenizer)
    prompted = prompted_user_example(make_conv(), INTENT, base_tok)
    assert len(prompted.user_spans) == len(flipped.user_spans) == 2
    for (_, s, e), (_, ps, pe) in zip(flipped.user_spans, prompted.user_spans):
        assert flipped.input_ids[s:e] == prompted.input_ids[ps:pe]
    text = base_tok.decode(prompted.input_ids)
    assert "<|im_start|>assistant\nhow do i sort" in text and "<|im_start|>user\nUse sorted(" in text
    assert base_tok.decode([t for t in prompted.labels if t != IGNORE_INDEX]).endswith(PROMPTED_END_MARKER)
    assert prompted.ended


def test_analog_init_copies_the_old_special_tokens():
    """With analog init the end tokens start as the base model's EOS row and the headers as its BOS row."""
    from userlm_env.flip.flipping import analog_tokens
    from userlm_env.users.template import START_HEADER

    tok = AutoTokenizer.from_pretrained(smollm2_dir())
    old_bos, old_eos = tok.bos_token, tok.eos_token
    added = prepare_tokenizer(tok)
    mapping = analog_tokens(added, old_bos, old_eos)
    assert mapping[END_CONVERSATION] == mapping[END_OF_TURN] == "<|im_end|>" and mapping[START_HEADER] == "<|im_start|>"
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=49152,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            tie_word_embeddings=False,
        )
    )
    prepare_model(model, tok, mapping)
    emb, out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    end, im_end = tok.convert_tokens_to_ids(END_CONVERSATION), tok.convert_tokens_to_ids("<|im_end|>")
    assert torch.equal(emb[end], emb[im_end]) and torch.equal(out[end], out[im_end])
    mean_only = LlamaForCausalLM(model.config)
    prepare_model(mean_only, tok)
    assert not torch.equal(
        mean_only.get_input_embeddings().weight[end], mean_only.get_input_embeddings().weight[im_end]
    )
