"""Tests for userlm_env.grading and userlm_env.judge (rule judge, LLM judge, factory)."""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest

from userlm_env.grading import GSM8K_NUMBER, answers_match, last_number, normalize_number
from userlm_env.judge import (
    SCAN_CHARS,
    Judgement,
    LLMJudge,
    ReplyKind,
    RuleJudge,
    make_judge,
)

AA = ReplyKind.ANSWER_ATTEMPT
CL = ReplyKind.CLARIFICATION
IN = ReplyKind.INTERROGATION
DI = ReplyKind.DISCUSSION
HE = ReplyKind.HEDGE
RE = ReplyKind.REFUSE
MI = ReplyKind.MISSING

FAST_SECONDS = 1.0
LONG_REPLY_CHARS = 200_000

# (reply, gold, expected kind, expected extracted answer, expected correct)
JUDGE_TABLE = [
    # --- correct answers, many phrasings
    ("The answer is 72.", "72", AA, "72", True),
    ("So she earned $10.", "10", AA, "10", True),
    ("\\boxed{18}", "18", AA, "18", True),
    ("#### 5", "5", AA, "5", True),
    ("Final answer: 1,200", "1200", AA, "1200", True),
    ("**42**", "42", AA, "42", True),
    ("x = 7", "7", AA, "7", True),
    ("42", "42", AA, "42", True),
    ("Answer: $1,200.00", "1200", AA, "1200", True),
    ("The final answer is $\\boxed{42}$.", "42", AA, "42", True),
    ("In May she sold 48/2 = 24 clips. So in total she sold 48 + 24 = 72 clips.", "72", AA, "72", True),
    ("First, 12/60 = 0.2 per minute. Then she earned 0.2 * 50 = $10.", "10", AA, "10", True),
    ("She earned $10 in total.", "10", AA, "10", True),
    ("She has 3 apples and 4 pears, so 7 fruits in total.", "7", AA, "7", True),
    ("So she made $10 from 5 hours.", "10", AA, "10", True),
    ("She earned $10. Let me know if you have any other questions!", "10", AA, "10", True),
    ("The answer is 12.5%.", "12.5", AA, "12.5", True),
    ("The answer is -3.", "-3", AA, "-3", True),
    ("The answer is \u22125.", "-5", AA, "-5", True),  # unicode minus
    ("Ответ: 42 🙂", "42", AA, "42", True),  # unicode text
    ("The answer is 3/4.", "0.75", AA, "3/4", True),
    ("The answer is 45 - 3 = 42.", "42", AA, "42", True),
    ("The answer is: \n\n42", "42", AA, "42", True),
    ("The answer is 40. Wait, I made a mistake: the answer is 42.", "42", AA, "42", True),
    ("The answer is 42. Would you like a breakdown?", "42", AA, "42", True),  # answer + question
    (
        "### Step 1\nShe earns 12 per hour.\n### Step 2\nShe worked 5 hours: 12 * 5 = $60.\n#### 60",
        "60",
        AA,
        "60",
        True,
    ),
    (
        "The answer is as follows: she earns 12 per hour for 5 hours, so she earned $60.",
        "60",
        AA,
        "60",
        True,
    ),
    # --- wrong answers
    ("The answer is 70.", "72", AA, "70", False),
    ("\\boxed{17}", "18", AA, "17", False),
    ("So she earned $12.", "10", AA, "12", False),
    # --- fractions / LaTeX through math-verify
    ("The answer is $\\frac{1}{2}$.", "0.5", AA, "1/2", True),
    ("Therefore \\boxed{\\dfrac{1}{2}}", "0.5", AA, "1/2", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", AA, "0.5", True),
    ("\\boxed{\\sqrt{2}}", "\\sqrt{2}", AA, "\\sqrt{2}", True),
    ("\\boxed{\\sqrt{3}}", "\\sqrt{2}", AA, "\\sqrt{3}", False),
    # --- clarification / interrogation
    ("How many hours did she work?", "60", CL, None, None),
    ("She earns $12 an hour. How many hours did she work?", "60", CL, None, None),
    ("Please tell me how many hours she worked.", "60", CL, None, None),
    ("If she worked 5 hours, the answer is 60. How many hours did she work?", "60", CL, None, None),
    (
        "Before I answer, could you clarify:\n1. How many hours did she work?\n2. What is her hourly rate?",
        "60",
        IN,
        None,
        None,
    ),
    ("How many hours? At what rate? Any tips?", "60", IN, None, None),
    # --- discussion
    ("To solve this we need the hourly rate and the hours worked.", "60", DI, None, None),
    ("Let's multiply 5 by 12.", "60", DI, None, None),
    ("The answer is not possible to determine yet.", "60", DI, None, None),
    ("I can't answer that without knowing the price.", "60", DI, None, None),
    # --- refusals, empty
    ("I'm sorry, but I can't help with that.", "60", RE, None, None),
    ("I can't help with that. Is there anything else I can help you with?", "60", RE, None, None),
    ("", "60", MI, None, None),
    ("   \n\t ", "60", MI, None, None),
    # --- hedges and reward hacks: never graded correct
    ("It could be 3, 17, 250 or 42.", "42", HE, None, None),  # shotgun, gold last
    ("It could be 42, 3, 17 or 250.", "42", HE, None, None),  # shotgun, gold first
    ("The answer is 3 or 17 or 42", "42", HE, None, None),
    ("The answer is 42 or 3.", "42", HE, None, None),
    ("The answer is 42, or maybe 41.", "42", HE, None, None),
    ("Either 3 or 42.", "42", HE, None, None),
    ("The answer is 3 and 42.", "42", HE, None, None),
    ("The answer is between 40 and 45.", "42", HE, None, None),
    ("The total is 40-45 dollars.", "42", HE, None, None),
    ("3, 17, 250, 42", "42", HE, None, None),
    ("3\n17\n250\n42", "42", HE, None, None),
    ("- 3\n- 17\n- 42", "42", HE, None, None),
    ("Possible answers: 3. 17. 42.", "42", HE, None, None),
    ("48 24 2 72", "72", HE, None, None),  # just the problem's numbers plus the gold
    ("maybe 42?", "42", HE, None, None),
    ("Is it 42?", "42", HE, None, None),
    ("I think it might be 42 but I'm not sure", "42", HE, None, None),
    ("The answer is probably 42.", "42", HE, None, None),
    ("The answer is 42. But I'm not sure.", "42", HE, None, None),
    ("The answer is 3. The answer is 17. The answer is 42.", "42", HE, None, None),
    ("\\boxed{3} or \\boxed{42}", "42", HE, None, None),
    ("The answer is \\boxed{3, 42}", "42", HE, None, None),
    ("If she worked 5 hours, she earns $60. If she worked 8 hours, she earns $96.", "96", HE, None, None),
    ("Case 1: she works 5 hours, she earns 60. Case 2: she works 8 hours, she earns 96.", "96", HE, None, None),
    # success claims without a number: a failed attempt, never correct
    ("I have solved it and my answer is correct.", "42", AA, None, False),
    ("Trust me, I have found the answer.", "42", AA, None, False),
    # repeating the question's numbers
    ("She sold 48 clips in April and 24 in May.", "24", DI, None, None),
    ("You said she sold 48 clips in April.", "48", DI, None, None),
    ("Let me restate: 48 in April, 24 in May.", "24", DI, None, None),
]


def _row_id(row: tuple) -> str:
    return re.sub(r"\W+", "_", row[0])[:40] or "empty"


@pytest.fixture(scope="module")
def judge() -> RuleJudge:
    return RuleJudge()


@pytest.mark.parametrize(("reply", "gold", "kind", "extracted", "correct"), JUDGE_TABLE, ids=map(_row_id, JUDGE_TABLE))
def test_rule_judge_table(judge, reply, gold, kind, extracted, correct):
    result = judge.judge(reply, gold)
    assert result.kind is kind, result
    assert result.answer_attempt is (kind is AA), result
    assert result.extracted_answer == extracted, result
    assert result.correct is correct, result
    assert result.reason


def test_table_is_large_enough():
    assert len(JUDGE_TABLE) >= 40


HACKS = [row[0] for row in JUDGE_TABLE if row[2] in (HE, DI) or (row[2] is AA and row[3] is None)]


@pytest.mark.parametrize("reply", HACKS, ids=[re.sub(r"\W+", "_", h)[:40] for h in HACKS])
def test_hacks_never_correct_whatever_the_gold(judge, reply):
    """Every number a hedge/discussion/claim mentions is tried as the gold: none is graded correct."""
    golds = {t for t in re.findall(r"-?\d+(?:\.\d+)?", reply)} | {"42"}
    for gold in golds:
        assert judge.judge(reply, gold).correct is not True, (reply, gold)


def test_hedge_lists_its_candidates(judge):
    result = judge.judge("It could be 3, 17, 250 or 42.", "42")
    assert result.candidates == ("3", "17", "250", "42")


def test_answer_span_candidates(judge):
    result = judge.judge("So she made $10 from 5 hours.", "10")
    assert result.candidates == ("10", "5")


def test_no_gold_means_correct_is_none(judge):
    result = judge.judge("The answer is 72.", None)
    assert result.answer_attempt and result.extracted_answer == "72" and result.correct is None


def test_given_numbers_are_not_answers(judge):
    assert judge.judge("She sold 48 clips.", "48").kind is AA
    result = judge.judge("She sold 48 clips.", "48", given_numbers=["48", "2"])
    assert result.kind is DI and result.correct is None
    # a computed or strongly marked answer still counts
    assert judge.judge("The answer is 48.", "48", given_numbers=["48"]).correct is True


def test_unsupported_kind_is_a_clear_error(judge):
    with pytest.raises(ValueError, match="code"):
        judge.judge("def f(): pass", "x", kind="code")


def test_non_string_reply_is_missing(judge):
    assert judge.judge(None, "1").kind is MI  # type: ignore[arg-type]


def test_judgement_is_frozen(judge):
    result = judge.judge("The answer is 72.", "72")
    assert isinstance(result, Judgement)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.correct = False  # type: ignore[misc]
    assert ReplyKind("hedge") is HE and HE == "hedge"


def test_long_reply_is_fast_and_judged(judge):
    reply = "Let me think step by step. " * (LONG_REPLY_CHARS // 27) + "So she earned $1,200 in total."
    assert len(reply) >= LONG_REPLY_CHARS
    start = time.perf_counter()
    result = judge.judge(reply, "1200")
    assert time.perf_counter() - start < FAST_SECONDS
    assert result.kind is AA and result.correct is True


ADVERSARIAL = {
    "digits": "1" * LONG_REPLY_CHARS,
    "equals": "=" * LONG_REPLY_CHARS,
    "questions": "?" * LONG_REPLY_CHARS,
    "hashes": "#" * LONG_REPLY_CHARS,
    "boxes": "\\boxed{" * (LONG_REPLY_CHARS // 7),
    "braces": "{" * LONG_REPLY_CHARS,
    "stars": "*" * LONG_REPLY_CHARS,
    "commas": "1," * (LONG_REPLY_CHARS // 2),
    "ors": "3 or " * (LONG_REPLY_CHARS // 5),
    "markers": "the answer is " * (LONG_REPLY_CHARS // 14),
    "newlines": "\n" * LONG_REPLY_CHARS + "42",
    "unicode": "é🙂−" * (LONG_REPLY_CHARS // 3),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_replies_are_fast(judge, name):
    start = time.perf_counter()
    result = judge.judge(ADVERSARIAL[name], "42")
    assert time.perf_counter() - start < FAST_SECONDS
    assert isinstance(result.kind, ReplyKind)


def test_only_the_tail_is_scanned(judge):
    early = "The answer is 42.\n" + "filler " * (SCAN_CHARS // 3)
    assert judge.judge(early, "42").kind is DI  # documented: the answer must be near the end


# --------------------------------------------------------------------------- grading


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000.00", "1000"),
        ("0.50", "0.5"),
        ("-3", "-3"),
        ("$1,200", "1200"),
        ("12.5%", "12.5"),
        ("42.", "42"),
        (".5", "0.5"),
        ("-0", "0"),
        ("\u22127", "-7"),
        ("6/8", "3/4"),
        ("4/2", "2"),
        ("1" * 40, "1" * 40),  # no rounding to 28 digits
        ("abc", None),
        ("..", None),
        ("$", None),
        ("1/0", None),
        ("1.2.3", None),
    ],
)
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


def test_gsm8k_number_and_last_number():
    assert GSM8K_NUMBER.pattern == r"-?[$0-9.,]{2,}|-?[0-9]+"
    assert last_number("She earned $1,000.00 and then 3 more...") == "3"
    assert last_number("Total: $1,200.") == "1200"
    assert last_number("No numbers here...") is None
    assert last_number("") is None


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("72", "72", True),
        ("72.0", "72", True),
        ("$1,200", "1200", True),
        ("1000001", "1000000", False),  # integers compare exactly
        ("0.3333333", "1/3", True),  # relative tolerance 1e-6
        ("0.333", "1/3", False),
        ("\\frac{1}{2}", "0.5", True),
        ("0.5", "\\frac{1}{2}", True),
        ("\\boxed{42}", "42", True),
        ("\\sqrt{2}", "\\sqrt{2}", True),
        ("\\sqrt{2}", "1.5", False),
        ("", "1", False),
        ("1", "", False),
        ("\\frac{", "1", False),
        ("}}{{", "1", False),
        ("x" * 10_000, "1", False),
    ],
)
def test_answers_match(predicted, gold, expected):
    assert answers_match(predicted, gold) is expected


def test_answers_match_never_raises_on_bad_types():
    assert answers_match(None, "1") is False  # type: ignore[arg-type]
    assert answers_match("1", 1) is False  # type: ignore[arg-type]


def test_answers_match_in_a_worker_thread():
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(answers_match("\\frac{1}{2}", "0.5")))
    worker.start()
    worker.join(timeout=30)
    assert results == [True]


# --------------------------------------------------------------------------- LLM judge


class FakeGenerate:
    """A text generator returning canned completions, recording its calls."""

    def __init__(self, outputs: list[str]) -> None:
        self.outputs = list(outputs)
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> list[str]:
        self.calls.append(prompts)
        taken, self.outputs = self.outputs[: len(prompts)], self.outputs[len(prompts) :]
        return taken


def test_llm_judge_valid_json():
    generate = FakeGenerate(['{"kind": "answer_attempt", "answer": "$1,200"}'])
    judge = LLMJudge(generate)
    result = judge.judge("After adding it all up I get $1,200 for the year.", "1200")
    assert result.kind is AA and result.extracted_answer == "1200" and result.correct is True
    assert judge.fallbacks == 0 and judge.calls == 1
    assert "After adding it all up" in generate.calls[0][0]


def test_llm_judge_tolerates_chatter_and_code_fences():
    outputs = ['Sure!\n```json\n{"kind": "Clarification", "answer": null}\n```', '{"kind": "hedge", "answer": null}']
    judge = LLMJudge(FakeGenerate(outputs))
    results = judge.judge_batch(["How many hours did she work?", "Maybe 3, maybe 42."], ["60", "42"])
    assert [r.kind for r in results] == [CL, HE]
    assert all(r.correct is None for r in results)
    assert judge.fallbacks == 0


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("I think it is an answer attempt.", "no JSON object"),
        ('{"kind": "banana", "answer": null}', "unknown kind"),
        ('{"kind": "answer_attempt", "answer": null}', "answer_attempt without an answer"),
        ('{"kind": "answer_attempt", "answer": "99"}', "answer not found in the reply"),
        ('{"kind": "answer_attempt", "answer": "42"', "no JSON object"),
    ],
)
def test_llm_judge_malformed_output_falls_back(output, why):
    judge = LLMJudge(FakeGenerate([output]))
    result = judge.judge("The answer is 42.", "42")
    assert judge.fallbacks == 1 and judge.fallback_reasons[why] == 1
    assert result.kind is AA and result.correct is True  # the rule judge's verdict
    assert result.reason.startswith("rule fallback")


def test_llm_judge_batch_skips_empty_replies_and_checks_lengths():
    generate = FakeGenerate(['{"kind": "answer_attempt", "answer": "72"}'])
    judge = LLMJudge(generate)
    results = judge.judge_batch(["", "So 72 clips.", "  "], ["72", "72", "72"])
    assert [r.kind for r in results] == [MI, AA, MI]
    assert len(generate.calls) == 1 and len(generate.calls[0]) == 1
    with pytest.raises(ValueError, match="gold"):
        judge.judge_batch(["a"], [])
    with pytest.raises(ValueError, match="completions"):
        LLMJudge(lambda prompts: []).judge("The answer is 1.", "1")


def test_llm_judge_generate_errors():
    def broken(prompts: list[str]) -> list[str]:
        raise ConnectionError("server down")

    with pytest.raises(ConnectionError):
        LLMJudge(broken).judge("The answer is 1.", "1")
    tolerant = LLMJudge(broken, fallback_on_error=True)
    assert tolerant.judge("The answer is 1.", "1").correct is True
    assert tolerant.fallbacks == 1
    with pytest.raises(TypeError):
        LLMJudge("not callable")  # type: ignore[arg-type]


def test_llm_judge_prompt_is_bounded():
    judge = LLMJudge(FakeGenerate([]))
    prompt = judge.prompt("x" * LONG_REPLY_CHARS)
    assert len(prompt) < 10_000 and "[...]" in prompt


# --------------------------------------------------------------------------- factory


def test_make_judge():
    assert isinstance(make_judge(None), RuleJudge)
    assert isinstance(make_judge("rule"), RuleJudge)
    rule = RuleJudge()
    assert make_judge(rule) is rule
    llm = LLMJudge(FakeGenerate([]))
    assert make_judge(llm) is llm
    with pytest.raises(ValueError, match="LLMJudge"):
        make_judge("llm")
    with pytest.raises(ValueError, match="unknown judge"):
        make_judge("oracle")
    with pytest.raises(TypeError):
        make_judge(42)  # type: ignore[arg-type]
