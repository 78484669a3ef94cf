"""training/eval_userlm.py: decision points, per-turn scoring, and a whole (tiny) evaluation run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoTokenizer

from training.eval_userlm import Args, Scored, decision_points, evaluate, turn_nll
from training.train_userlm import make_args, train
from userlm_env.backends.models import BUNDLED_SMOLLM2, load_model
from userlm_env.flip.data import Conversation
from userlm_env.flip.flipping import (
    PROMPTED_END_MARKER,
    flip_conversation,
    prepare_tokenizer,
    prompted_user_example,
)
from userlm_env.users.template import END_CONVERSATION

TURNS = [
    ("user", "how do i sort a list in python by a key"),
    ("assistant", "Use sorted(items, key=...)."),
    ("user", "and in reverse order?"),
    ("assistant", "Pass reverse=True as well."),
    ("user", "thanks, what about tuples"),
    ("assistant", "Same thing."),
]


@pytest.fixture(scope="module")
def tokenizers():
    path = load_model(BUNDLED_SMOLLM2, dtype="float32", device="cpu").model.name_or_path
    flipped = AutoTokenizer.from_pretrained(path)
    prepare_tokenizer(flipped)
    return flipped, AutoTokenizer.from_pretrained(path)


def test_decision_points_sit_where_a_user_turn_opens(tokenizers):
    """Every decision position precedes a user turn's first token (or the end marker), in both layouts."""
    flipped_tok, base_tok = tokenizers
    conv = Conversation("x", [{"role": r, "content": c} for r, c in TURNS], "test")
    a = flip_conversation(conv, "You want sorting help.", flipped_tok)
    b = prompted_user_example(conv, "You want sorting help.", base_tok)
    da, db = decision_points(a), decision_points(b)
    assert [end for _, end in da] == [end for _, end in db] == [False, False, True]
    end_id = flipped_tok.convert_tokens_to_ids(END_CONVERSATION)
    assert a.input_ids[da[-1][0] + 1] == end_id
    assert [a.input_ids[p + 1] for p, _ in da[:-1]] == [a.input_ids[s] for t, s, _ in a.user_spans if t >= 1]
    marker = base_tok.encode(PROMPTED_END_MARKER, add_special_tokens=False)
    assert b.input_ids[db[-1][0] + 1 : db[-1][0] + 1 + len(marker)] == marker
    # per-turn NLL sums exactly the content tokens' log-probabilities
    logprobs = -torch.arange(len(a.input_ids) - 1, dtype=torch.float) / 100
    nll = turn_nll(a, Scored(logprobs, torch.zeros(len(a.input_ids) - 1, dtype=torch.long)))
    for turn, start, end in a.user_spans:
        assert nll[turn][1] == end - start
        assert nll[turn][0] == pytest.approx(sum(p / 100 for p in range(start - 1, end - 1)))


def test_evaluation_run_writes_the_side_by_side_report(tmp_path):
    """A tiny trained run is evaluated against its prompted base: finite perplexities, every metric row, files."""
    torch.set_num_threads(1)
    summary = train(make_args("test", output_dir=str(tmp_path), quiet=True))
    report = evaluate(
        Args(
            run_dir=summary["run_dir"],
            num_ppl_conversations=10,
            num_gen_intents=3,
            samples_per_intent=2,
            max_new_tokens=6,
            env_tasks=0,
            num_threads=1,
            quiet=True,
        )
    )
    assert report["env"] is None and report["sharded_heldout"] is None  # no --mix run, env not asked
    assert report["scored_conversations"] >= 5 and report["termination_decisions"] > 0
    for name in ("trained", "prompted_base"):
        assert math.isfinite(report["perplexity"][name]["user_turn_ppl"]) and report["perplexity"][name]["tokens"] > 0
    # both models are scored on the same tokens
    assert report["perplexity"]["trained"]["tokens"] == report["perplexity"]["prompted_base"]["tokens"]
    table = report["table"]
    assert set(table) == {"trained", "prompted_base", "human"}
    for key in ("termination_f1", "pooled_distinct_2", "intent_decomposition", "role_adherence", "intent_adherence"):
        assert all(key in row for row in table.values())
    out = tmp_path / summary["run_dir"].split("/")[-1] / "eval"
    saved = json.loads((out / "eval_report.json").read_text())
    assert saved["table"]["human"]["termination_f1"] == 1.0
    assert "| metric | trained User LM | prompted base | real humans |" in (out / "eval_report.md").read_text()
    assert (out / "eval_userlm.png").stat().st_size > 1000
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["simulator"] for s in samples} == {"trained", "prompted_base"}
