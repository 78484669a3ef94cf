"""Evaluation metrics on hand-made scores and transcripts with known answers."""

from __future__ import annotations

import math

import pytest

from userlm_env.evaluation.assistant_metrics import (
    attempt_stats,
    bootstrap_ci,
    lic_metrics,
    lic_metrics_with_ci,
    relative_drop,
    scores_by_task,
    task_metrics,
)
from userlm_env.evaluation.user_metrics import (
    added_numbers,
    first_turn_diversity,
    first_turn_share,
    intent_decomposition,
    intent_overlap,
    is_repeated_demand,
    looks_like_assistant,
    termination_scores,
    turn_length_stats,
    user_metrics_from_conversations,
    user_metrics_from_episodes,
)

INTENT = "Janet has 16 eggs. She eats 3 eggs for breakfast. How many eggs are left?"

# ----------------------------------------------------------------------------------- LiC scores


def test_task_metrics_by_hand():
    """3 of 10 runs right: P 30; 90th percentile 1 (A90 100); 10th 0 (U90_10 100)."""
    assert task_metrics([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]) == pytest.approx((30.0, 100.0, 100.0))
    assert task_metrics([1] * 10) == pytest.approx((100.0, 100.0, 0.0))
    assert task_metrics([0.5] * 4) == pytest.approx((50.0, 50.0, 0.0))


def test_lic_metrics_average_over_tasks_not_runs():
    """Task A (3/10) and task B (1 of 1): P is the mean of 30 and 100, not of 4/11."""
    by_task = {"a": [1, 1, 1, 0, 0, 0, 0, 0, 0, 0], "b": [1]}
    assert lic_metrics(by_task) == pytest.approx({"P": 65.0, "A90": 100.0, "U90_10": 50.0})
    assert all(math.isnan(v) for v in lic_metrics({}).values())


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    """The interval brackets the point estimate, is reproducible, and collapses when tasks agree."""
    by_task = {f"t{i}": [1.0] * i + [0.0] * (10 - i) for i in range(10)}
    lo, hi = bootstrap_ci(by_task, lambda b: lic_metrics(b)["P"], seed=3)
    assert 0 <= lo < 45 < hi <= 100
    assert (lo, hi) == bootstrap_ci(by_task, lambda b: lic_metrics(b)["P"], seed=3)
    same = {f"t{i}": [1.0, 0.0] for i in range(5)}
    assert bootstrap_ci(same, lambda b: lic_metrics(b)["P"]) == pytest.approx((50.0, 50.0))
    result = lic_metrics_with_ci(by_task)
    assert result["tasks"] == 10 and result["runs"] == 100
    assert result["U90_10_ci"][0] <= result["U90_10"] <= result["U90_10_ci"][1]


def test_relative_drop_paired_over_shared_tasks():
    """FULL solves both tasks, SHARDED half the runs: -50%. Only shared tasks count; P FULL 0 gives NaN."""
    full = {"a": [1, 1], "b": [1, 1], "only_full": [0, 0]}
    sharded = {"a": [1, 0], "b": [0, 1]}
    drop = relative_drop(full, sharded)
    assert drop["drop_pct"] == pytest.approx(-50.0) and drop["tasks"] == 2
    assert drop["drop_ci"][0] <= -50.0 <= drop["drop_ci"][1]
    assert math.isnan(relative_drop({"a": [0]}, {"a": [1]})["drop_pct"])
    assert relative_drop({"a": [1]}, {"b": [1]})["tasks"] == 0


def _step(turn, *, attempt=False, correct=None, revealed=(1,), new=(), ended=False, end_reason=None):
    return {
        "turn": turn,
        "answer_attempt": attempt,
        "correct": correct,
        "shards_revealed": list(revealed),
        "new_shards": list(new),
        "user_ended": ended,
        "end_reason": end_reason,
    }


def _record(task_id, score, steps, *, num_shards=3, opening=(1,), transcript=None, end_reason=None, error=None):
    return {
        "task_id": task_id,
        "score": score,
        "steps": steps,
        "num_shards": num_shards,
        "opening_shards": list(opening),
        "shards_revealed": len(steps[-1]["shards_revealed"]) if steps else len(opening),
        "transcript": transcript or [],
        "turns": len(steps),
        "end_reason": end_reason,
        "error": error,
        "instruction": INTENT,
    }


def test_attempt_stats_by_hand():
    """First attempt turn, premature attempts (shards hidden when answering) and episodes without any."""
    early = _record(
        "a",
        1.0,
        [
            _step(1, attempt=True, correct=False, revealed=(1, 2), new=(2,)),  # premature: 1 of 3 known
            _step(2, revealed=(1, 2, 3), new=(3,)),
            _step(3, attempt=True, correct=True, revealed=(1, 2, 3), end_reason="correct_answer"),
        ],
    )
    never = _record(
        "b", 0.0, [_step(1, revealed=(1, 2), new=(2,)), _step(2, revealed=(1, 2, 3), end_reason="max_turns")]
    )
    failed = _record("c", 0.0, [], error="Traceback: boom")
    stats = attempt_stats([early, never, failed])
    assert stats["episodes"] == 2
    assert stats["first_attempt_turn"] == 1.0  # only episodes with an attempt
    assert stats["attempts_per_episode"] == 1.0
    assert stats["premature_attempts"] == 0.5
    assert stats["no_attempt_share"] == 0.5
    assert scores_by_task([early, never, failed]) == {"a": [1.0], "b": [0.0]}
    assert math.isnan(attempt_stats([failed])["first_attempt_turn"])


# ------------------------------------------------------------------------------ user metrics


def test_first_turn_diversity():
    """A user that always opens alike gets 1/N unique first turns; distinct openings get 1."""
    same = first_turn_diversity({"task": ["how many eggs?"] * 4})
    assert same["unique_first_turns"] == 0.25 and same["distinct_2"] == pytest.approx(3 / 12)
    varied = first_turn_diversity({"task": ["how many eggs?", "eggs left after breakfast", "count my eggs pls"]})
    assert varied["unique_first_turns"] == 1.0 and varied["distinct_2"] == 1.0
    singles = first_turn_diversity({"a": ["x y"], "b": ["x y"]})  # groups of one: pooled only
    assert math.isnan(singles["unique_first_turns"]) and singles["pooled_distinct_2"] == 0.5


def test_intent_decomposition_and_first_turn_share():
    """Pasting the whole task reveals all of it; a bare question reveals little."""
    assert intent_decomposition(INTENT, INTENT) == 1.0
    partial = intent_decomposition("how many eggs are left?", INTENT)
    assert 0 < partial < 0.5
    assert intent_decomposition("hello", INTENT) == 0.0
    assert math.isnan(intent_decomposition("hi", "the"))
    assert first_turn_share(["how many eggs are left?", "janet has 16 eggs", "she eats 3"]) < 0.5
    assert first_turn_share([INTENT]) == 1.0
    assert math.isnan(first_turn_share([]))


@pytest.mark.parametrize(
    ("turn", "assistant_like"),
    [
        ("Sure! Here's how to solve it: 16 - 3 = 13", True),
        ("I'd be happy to help you with that.", True),
        ("How can I help you today?", True),
        ("Let me know if you need anything else!", True),
        ("16 - 3 = 13 and 13 * 2 = 26", True),
        ("First, count the eggs.\nThen, subtract.", True),
        ("how many eggs are left?", False),
        ("janet has 16 eggs btw", False),
        ("I need help with my homework", False),
        ("", False),
    ],
)
def test_looks_like_assistant(turn, assistant_like):
    """Role adherence: assistant-like user turns are flagged, ordinary user turns are not."""
    assert looks_like_assistant(turn) is assistant_like


def test_termination_scores_by_hand():
    """tp=1, fp=1, fn=1 -> P=R=F1=0.5; no endings at all -> zeros (not a crash)."""
    scores = termination_scores([True, True, False, False], [True, False, True, False])
    assert scores["precision"] == scores["recall"] == scores["f1"] == 0.5
    assert scores["should_end"] == 2 and scores["ended"] == 2
    none = termination_scores([False, False], [False, False])
    assert none["f1"] == 0.0 and none["decisions"] == 2
    with pytest.raises(ValueError, match="length"):
        termination_scores([True], [])


def test_repeats_added_numbers_overlap_and_lengths():
    """Repeated demands, invented numbers (digits only), intent adherence and turn lengths."""
    assert is_repeated_demand("Janet has 16 eggs!", ["janet has 16 eggs"])
    assert not is_repeated_demand("she eats 3 for breakfast", ["janet has 16 eggs"])
    assert not is_repeated_demand("", ["janet has 16 eggs"])
    assert added_numbers("she also has 40 hens", INTENT) == {"40"}
    assert added_numbers("one more thing: she eats 3", INTENT) == set()
    assert intent_overlap("janet eggs", INTENT) == 1.0 and intent_overlap("pizza party", INTENT) == 0.0
    stats = turn_length_stats(["a b c", "", "a b c d e"])
    assert stats["mean_words"] == pytest.approx(8 / 3) and stats["empty_share"] == pytest.approx(1 / 3)
    assert math.isnan(turn_length_stats([])["mean_words"])


def _chat(*user_turns, reply="ok"):
    chat = []
    for turn in user_turns:
        chat += [{"role": "user", "content": turn}, {"role": "assistant", "content": reply}]
    return chat


def test_user_metrics_from_episodes_edge_cases():
    """Gradual user, a user who ends at turn 1, empty turns, error records, and termination probes."""
    gradual = _record(
        "t",
        1.0,
        [
            _step(1, revealed=(1, 2), new=(2,)),
            _step(2, revealed=(1, 2, 3), new=(3,)),
            _step(3, attempt=True, correct=True, revealed=(1, 2, 3), end_reason="correct_answer"),
        ],
        transcript=_chat("how many eggs are left?", "janet has 16 eggs", "she eats 3 for breakfast"),
        end_reason="correct_answer",
    )
    quitter = _record(  # ends the chat in its first answer, with an empty message
        "t",
        0.0,
        [_step(1, revealed=(1,), ended=True, end_reason="user_ended")],
        transcript=[{"role": "user", "content": "eggs?"}, {"role": "assistant", "content": "How many?"}],
        end_reason="user_ended",
    )
    broken = _record("t", 0.0, [], error="boom")
    metrics = user_metrics_from_episodes([gradual, quitter, broken], termination_probes=[True])
    assert metrics["conversations"] == 2
    assert metrics["first_turn_shards"] == pytest.approx(1 / 3)
    assert metrics["intent_coverage"] == pytest.approx((1 + 1 / 3) / 2)
    assert metrics["user_end_rate"] == 0.5
    # decisions: gradual's 2 user answers (should not end), quitter's end (should not), the probe (should)
    assert metrics["termination_precision"] == 0.5 and metrics["termination_recall"] == 1.0
    assert metrics["termination_should_end"] == 1
    assert metrics["role_adherence"] == 1.0 and metrics["added_number_turns"] == 0.0
    no_probe = user_metrics_from_episodes([gradual, quitter])
    assert no_probe["termination_recall"] == 0.0 and no_probe["termination_should_end"] == 0


def test_conversation_metrics_on_empty_turns():
    """Chats without user turns are skipped; empty user turns count in the length statistics."""
    metrics = user_metrics_from_conversations([[], _chat("", "real question here")], intents=[None, None])
    assert metrics["conversations"] == 1 and metrics["turn_empty_share"] == 0.5
    assert math.isnan(metrics["intent_decomposition"])


# ------------------------------------------------------------------------- LM-judged metrics


def test_llm_user_metrics_parsing_and_shares():
    """Shares count valid one-word answers only; unparseable answers are counted as invalid."""
    from userlm_env.evaluation.llm_user_metrics import llm_user_metrics, parse_choice

    assert parse_choice("User.", "USER", "ASSISTANT") is True
    assert parse_choice("I think ASSISTANT", "USER", "ASSISTANT") is False
    assert parse_choice("no idea", "USER", "ASSISTANT") is None
    answers = {"how many eggs?": ("USER", "HUMAN"), "Sure! Here is the solution.": ("ASSISTANT", "MACHINE")}

    def judge(prompts):
        out = []
        for prompt in prompts:
            turn = next(t for t in [*answers, "???"] if t in prompt)
            pair = answers.get(turn, ("maybe", "maybe"))
            out.append(pair[0] if "Who wrote" in prompt else pair[1])
        return out

    result = llm_user_metrics(["how many eggs?", "Sure! Here is the solution.", "???", "  "], judge, batch_size=2)
    assert result["judged"] == 3  # the blank turn is not sent
    assert result["role_adherence"] == 0.5 and result["naturalness"] == 0.5
    assert result["role_adherence_invalid"] == 1 and result["naturalness_invalid"] == 1
    with pytest.raises(ValueError, match="answers"):
        llm_user_metrics(["a b"], lambda prompts: [])


@pytest.mark.slow
def test_llm_user_metrics_on_the_bundled_model():
    """The judge runs on a real backend (SmolLM2-135M): every turn is judged, answers parsed or counted."""
    from userlm_env.backends.transformers_backend import SamplingParams, TransformersBackend
    from userlm_env.evaluation.llm_user_metrics import judge_users

    complete = TransformersBackend.from_spec("smollm2-135m").chat_completer(SamplingParams(max_new_tokens=4))
    records = [{"setting": "SHARDED", "user": "u", "transcript": [{"role": "user", "content": "how many eggs left?"}]}]
    result = judge_users(records, complete, human_turns=["what is 2+2", "write me a poem about cats"])
    assert set(result) == {"u", "human"} and result["human"]["judged"] == 2
    for metrics in result.values():
        for name in ("role_adherence", "naturalness"):
            assert math.isnan(metrics[name]) or 0 <= metrics[name] <= 1
            assert 0 <= metrics[f"{name}_invalid"] <= metrics["judged"]
