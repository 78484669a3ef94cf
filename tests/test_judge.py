"""Tests for userlm_env.grading and userlm_env.judge (rule judge, LLM judge, factory)."""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest

from userlm_env.grading import GSM8K_NUMBER, answer_hedge, answers_match, last_number, normalize_number
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
    # negations, corrections, the last committed answer
    ("The answer is not 37.", "37", DI, None, None),
    ("\\boxed{37} \\text{42}", "42", AA, "37", False),  # the box is the committed answer, the text a remark
    ("The answer is 37. Actually, no: the answer is 42.", "37", AA, "42", False),
    ("The answer is 37 / 42.", "42", AA, "37/42", False),  # a fraction (with spaces), graded as one value
]

# Hedges (each re-judged below with every number it holds as the gold): one family per line of
# the structural rule -- a disjunction, a relation or bound, an interval or set, several values,
# an approximation, or another answer offered after the committed one.
HEDGE_FAMILIES = [
    r"\boxed{37 \lor 42}",
    r"\boxed{37 \quad 42}",
    r"\boxed{\begin{cases}37\\42\end{cases}}",
    r"\boxed{40 \leq x \leq 42}",
    r"\boxed{x \geq 42}",
    "The answer is 42. Or maybe 37.",
    "The answer is 37. Or maybe 42.",
    "The answer is either 37 or 42.",
    "The answer is 42, or possibly 37.",
    "The answer is 42, or perhaps 37.",
    "The answer is 42. Or possibly 37.",
    r"The answer is $\{37, 42\}$.",
    r"\boxed{\{37, 42\}}",
    r"\boxed{37, 42}",
    r"\boxed{42, 37}",
    r"\boxed{37, 40, 42}",
    "\\boxed{37}\n\n\\boxed{42}",
    r"\boxed{42} \boxed{37}",
    r"\boxed{42 \pm 1}",
    r"\boxed{\pm 42}",
    "The answer is 42 ± 1.",
    r"The answer is $42 \pm 1$.",
    r"\boxed{x \in [40, 42]}",
    r"\boxed{\approx 42}",
    r"\boxed{x \approx 42}",
    r"\boxed{37 \approx 42}",
    r"The answer is $\approx 42$.",
    "The answer is 0.5/0.75.",
    "The answer is $37/$42.",
    "The answer is 37~42.",
    r"\boxed{37~42}",
    r"\boxed{37 \sim 42}",
    "The answer is between 40 and 42.",
    "The answer is at least 42.",
    "The answer is 42 or more.",
    r"\boxed{[40, 42]}",
    "The answer is $[40, 42]$.",
    r"\boxed{(40, 42)}",
    r"\boxed{37 \text{ or } 42}",
    r"\boxed{42 \text{ or } 37}",
    r"\boxed{37 \vee 42}",
    r"\boxed{37 \;\text{or}\; 42}",
    r"\boxed{37\;\text{or}\;42}",
    r"The answer is 42 \text{ or } 37.",
    r"\boxed{40 ≤ x ≤ 42}",
    r"\boxed{x ≥ 42}",
    r"\boxed{37 ∨ 42}",
    "The answer is 37 ∨ 42.",
    "The answer is 42 (or 37).",
    "The answer is 42 (37 if rounded).",
    "The answer is 42. Alternatively, 37.",
    "The answer is 42. If not, 37.",
    "It's definitely 42. Unless it's 37.",
    "The answer is 42. Is it 37?",
    "The answer is 42. 37.",
    "The answer is 42\n\n- 37\n- 42",
    "The answer is 42. That said, 37 is another option.",
    "Answer: 42 (though 37 is also possible)",
    "The answer is about 42.",
    "The answer is approximately 42.",
    "The answer is ~42.",
    "The answer is 42+.",
    "The answer is 42-ish.",
    "The answer is at most 42.",
    "The answer is no more than 42.",
    "The answer is less than 42.",
    "The answer is over 40.",
    "So she has at least 42 apples left.",
    "So she has about 42 apples left.",
    "The answer is 40..42.",
    r"\boxed{40 \ldots 42}",
    r"\boxed{40 \to 42}",
    r"\boxed{40\text{--}42}",
    r"\boxed{x = 37 \text{ or } x = 42}",
    r"\boxed{x = 37, y = 42}",
    r"\boxed{\begin{matrix}37 & 42\end{matrix}}",
    r"\boxed{37; 42}",
    r"\boxed{\text{37 or 42}}",
    r"\boxed{42 \text{ or more}}",
    r"\boxed{42+}",
    r"\boxed{\geq 42}",
    r"\boxed{x < 42}",
    r"\boxed{37 \mid 42}",
    r"\boxed{37 \cup 42}",
    r"\boxed{\max(37, 42)}",
    r"\boxed{37} \text{ or } 42",
    "\\boxed{42}\n\nAlternatively, the answer is 37.",
    r"\boxed{42}. The answer is 37.",
    "The answer is 37|42.",
    "The answer is 37 and/or 42.",
    "The answer is x = 37 or x = 42.",
    "The answer is 6 * 7 = 37 or 42.",
    "Final answer: 37 or 42",
    "#### 37 or 42",
    r"\boxed{0.5 \lor 0.75}",
    r"\boxed{\frac{1}{2} \text{ or } \frac{3}{4}}",
    "The answer is $1,000 or $1,200.",
    r"\boxed{\$1,000 \text{ to } \$1,200}",
    r"\boxed{42} \text{ or } \boxed{37}",
    r"\boxed{37 \text{ vs } 42}",
    r"\boxed{\begin{array}{c} 37 \\ 42 \end{array}}",
    r"\boxed{42 \neq 37}",
    "<answer>37 or 42</answer>",
    "The answer is **37** or **42**.",
]

# Honest single answers: always graded correct, whatever the format.
HONEST_FORMS = [  # (reply, gold, extracted)
    (r"\boxed{42}", "42", "42"),
    (r"\boxed{\frac{3}{4}}", "0.75", "3/4"),
    (r"\boxed{0.75}", "3/4", "0.75"),
    (r"\boxed{42\text{ dollars}}", "42", "42"),
    (r"\boxed{\$42}", "42", "42"),
    (r"\boxed{x = 42}", "42", "42"),
    (r"\boxed{42^\circ}", "42", r"42^\circ"),
    (r"\boxed{1{,}000}", "1000", "1000"),
    (r"\boxed{-5}", "-5", "-5"),
    (r"\boxed{3\sqrt{2}}", r"3\sqrt{2}", r"3\sqrt{2}"),
    ("So she has 42 apples left.", "42", "42"),
    ("42 (forty-two)", "42", "42"),
    ("The answer is 42. Final answer: 42", "42", "42"),
    ("The answer is 1,000,000.", "1000000", "1000000"),
    (r"\boxed{42\%}", "42", "42"),
    ("The answer is 42%.", "42", "42"),
    ("She drove 42 km.", "42", "42"),
    (r"\boxed{42 \text{ km}}", "42", "42"),
    (r"\boxed{1\,200}", "1200", "1200"),
    (r"\boxed{1 200}", "1200", "1200"),
    (r"\boxed{2^{10}}", "1024", "2^{10}"),
    (r"\boxed{6 \times 7 = 42}", "42", r"6 \times 7 = 42"),
    ("The answer is 42 (= 6 * 7).", "42", "42"),
    ("The answer is not 37 but 42.", "42", "42"),
    ("The answer is 42, not 37.", "42", "42"),
    (r"\boxed{37}. Wait, I made an error. The answer is 42.", "42", "42"),
    ("\\boxed{42}\n\nThe answer is 42 apples.", "42", "42"),
    ("Either way, she has 42 apples left.", "42", "42"),
    (
        "The answer is 72.\n\nIf she sold 48 clips in April and half as many in May, she sold 48/2 = 24 in May, "
        "so 48 + 24 = 72 in total.",
        "72",
        "72",
    ),
    ("\\boxed{72}\n\nIf we add the 24 clips of May to the 48 of April, we get 72.", "72", "72"),
    ("\\boxed{0.75}\n\nThat is 3/4 of the cake.", "0.75", "0.75"),
    (r"\boxed{42 \text{ cm}^2}", "42", r"42 \text{ cm}^2"),
    (r"\boxed{\dfrac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}", r"\dfrac{\sqrt{3}}{2}"),
    (r"\boxed{2x + 3}", "2x+3", "2x + 3"),
    ("First, 6 boxes of 7 eggs is 6 * 7 = 42 eggs. She eats 5, so 42 - 5 = 37. So she has 37 eggs left.", "37", "37"),
    ("The answer is $42.00.", "42", "42"),
    ("The answer is 1 / 2.", "0.5", "1/2"),
    ("The answer is 72. Alternatively, 48 + 24 = 72.", "72", "72"),  # another method, the same answer
    ("The answer is 42 apples (6 bags of 7).", "42", "42"),
    ("Answer: 42 — she keeps 42 of the 50 apples.", "42", "42"),
]

JUDGE_TABLE += [(reply, "42", HE, None, None) for reply in HEDGE_FAMILIES]
JUDGE_TABLE += [(reply, gold, AA, extracted, True) for reply, gold, extracted in HONEST_FORMS]


def _row_id(row: tuple) -> str:
    return re.sub(r"\W+", "_", row[0])[:60] or "empty"


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
    assert len(HEDGE_FAMILIES) >= 100 and len(HONEST_FORMS) >= 30


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
        ("1/" + "1" * 4400, None),  # past int()'s digit limit: not a number, no error
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


@pytest.mark.parametrize(
    "expression",
    [
        r"37 \lor 42",
        r"37 \quad 42",
        r"\begin{cases}37\\42\end{cases}",
        r"40 \leq x \leq 42",
        r"x \geq 42",
        r"x > 40",
        r"\{37, 42\}",
        r"37, 42",
        r"[40, 42]",
        r"(40, 42]",
        r"[40, \infty)",
        r"42 \pm 1",
        r"\pm 42",
        r"\approx 42",
        r"x \in [40, 42]",
        r"37 \sim 42",
        "37~42",
        "~42",
        r"42 \text{ or } 37",
        r"37\;\text{or}\;42",
        r"x \ne 37",
        r"37 \cup 42",
        r"37 \mid 42",
        "42+",
        r"42 \text{ or more}",
        r"\text{at least } 42",
        r"42\text{-ish}",
        "40..42",
        r"40 \ldots 42",
        r"40 \to 42",
        "40-45",
        "40 – 45",
        r"x = 37, y = 42",
        r"\begin{matrix}37 & 42\end{matrix}",
        "37; 42",
        "42 (37)",
        "37 ≤ x ≤ 42",
        "37 ∨ 42",
        "2:30",
        "x" * 2000,
    ],
)
def test_answer_hedge_finds_expressions_that_are_not_one_value(expression):
    assert answer_hedge(expression) is not None


@pytest.mark.parametrize(
    "expression",
    [
        "42",
        r"\frac{3}{4}",
        "0.75",
        r"42\text{ dollars}",
        r"\$42",
        r"x = 42",
        r"42^\circ",
        r"1{,}000",
        r"1\,200",
        "1 200",
        "-5",
        r"3\sqrt{2}",
        r"42\%",
        r"2^{3}",
        r"1.5 \times 10^{3}",
        r"6 \times 7 = 42",
        r"\dfrac{\sqrt{3}}{2}",
        r"2\pi",
        r"42~\text{dollars}",
        r"42 \text{ cm}^2",
        r"\binom{5}{2}",
        r"\begin{aligned} x &= 6 \cdot 7 \\ &= 42 \end{aligned}",
        r"x^2 + 3x + 2",
        "",
    ],
)
def test_answer_hedge_accepts_single_values(expression):
    assert answer_hedge(expression) is None


@pytest.mark.parametrize(
    ("predicted", "gold"),
    [  # math-verify alone matches each of these (it is lenient with sets, relations, disjunctions)
        (r"x \geq 42", "42"),
        (r"40 \leq x \leq 42", "42"),
        (r"[40, 42]", "42"),
        (r"\{37, 42\}", "42"),
        (r"37 \lor 42", "42"),
        (r"37 \quad 42", "42"),
        (r"\approx 42", "42"),
        (r"37 \approx 42", "42"),
        (r"x \in [40, 42]", "42"),
        (r"37 \mid 42", "42"),
        (r"42 \text{ or } 37", "37"),
        (r"x \ne 37", "37"),
    ],
)
def test_answers_match_refuses_hedged_predictions(predicted, gold):
    assert answers_match(predicted, gold) is False


def test_answers_match_compares_like_structures():
    assert answers_match("[40, 42]", "[40, 42]") is True  # an interval gold takes an interval
    assert answers_match(r"\{37, 42\}", r"\{42, 37\}") is True


def test_answers_match_huge_numbers_do_not_overflow():
    big = "9" * 4000
    assert answers_match(big, "1/3") is False  # exact comparison: no float overflow
    assert answers_match(big, big) is True
    assert answers_match("1" + "0" * 400 + ".5", "1" + "0" * 400 + ".5") is True
    assert answers_match("9" * 5000, "42") is False  # beyond int()'s digit limit: never raises


@pytest.mark.parametrize(
    "expression",
    [r"9^{9^{9}}", "9^9^9", r"9^{999999999}", r"(10^{100})!", "99999999!", r"\binom{10^{9}}{5 \cdot 10^{8}}"]
    + [r"\binom{1000000000}{500000000}", r"\Gamma(10^{8})"],
)
def test_answers_match_refuses_costly_expressions_even_in_a_thread(expression):
    """sympy would compute numbers of millions of digits in C: no timeout could stop it."""
    results: list[bool] = []
    worker = threading.Thread(target=lambda: results.append(answers_match(expression, "42")), daemon=True)
    start = time.perf_counter()
    worker.start()
    worker.join(timeout=10)
    assert results == [False] and time.perf_counter() - start < 5


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


@pytest.mark.parametrize("reply", ["?", "??", "...?", "? ? ?", "*?*"])
def test_punctuation_alone_is_not_a_clarification(judge, reply):
    """A bare question mark asks nothing: it must not earn the clarification component."""
    from userlm_env.rewards import ASKING_KINDS

    assert judge.judge(reply, "12").kind not in ASKING_KINDS
