"""Property-based tests of the rule judge (hypothesis): robustness, hedges, honest answers.

The default profile is deterministic and bounded (a few seconds); ``HYPOTHESIS_PROFILE=judge-deep``
explores more, with fresh random examples each run.
"""

from __future__ import annotations

import os
import re
import time
from fractions import Fraction

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from userlm_env.grading import answers_match, normalize_number  # noqa: E402
from userlm_env.judge import Judgement, ReplyKind, RuleJudge  # noqa: E402

settings.register_profile(
    "judge-default",
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "judge-deep",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "judge-default")
if not PROFILE.startswith("judge-"):
    PROFILE = "judge-default"

JUDGE = RuleJudge()
SLOW_SECONDS = 3.0  # one judgement, math-verify included (its own timeout is 2 s)
LONG_REPLY_CHARS = 100_000

# --------------------------------------------------------------------------- strategies

CHUNKS = [
    "\\boxed{",
    "\\fbox{",
    "{",
    "}",
    "\\frac{",
    "}{",
    "\\text{",
    "\\begin{cases}",
    "\\end{cases}",
    "\\\\",
    "\\lor",
    "\\leq",
    "\\geq",
    "\\pm",
    "\\in",
    "\\approx",
    "\\sqrt{",
    "^{",
    "!",
    "$",
    "\\$",
    "\\%",
    "%",
    "=",
    " or ",
    " and ",
    " maybe ",
    " to ",
    ", ",
    ". ",
    "? ",
    "\n",
    "**",
    "####",
    "The answer is ",
    "Final answer: ",
    "So she has ",
    "If not, ",
    "Wait, actually ",
    "not ",
    "~",
    "..",
    "≤",
    "∨",
    "±",
    "\ud800",  # a lone surrogate
    "\udfff",
    "\u200b",
    "\x00",
    "\x01",
    "\x02",
    "４２",
    "-",
    "/",
    "9" * 4000,  # 10**4000-ish
    "1" + "0" * 4300,
    "9^{9^{9}}",
    "(10^{100})!",
]

numbers_text = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 10**9).map(lambda n: f"{n:,}"),
    st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False).map(str),
    st.tuples(st.integers(1, 99), st.integers(1, 99)).map(lambda t: f"{t[0]}/{t[1]}"),
)
chunk = st.one_of(st.text(max_size=12), st.sampled_from(CHUNKS), numbers_text)
replies = st.lists(chunk, max_size=30).map("".join)
golds = st.one_of(st.none(), numbers_text, st.sampled_from(["\\frac{1}{2}", "\\sqrt{2}", "x", "", "9" * 4000]))


def _judge_timed(reply: str, gold: str | None) -> tuple[Judgement, float]:
    start = time.perf_counter()
    result = JUDGE.judge(reply, gold)
    return result, time.perf_counter() - start


def _well_formed(result: Judgement, gold: str | None) -> None:
    assert isinstance(result, Judgement) and isinstance(result.kind, ReplyKind)
    assert result.answer_attempt is (result.kind is ReplyKind.ANSWER_ATTEMPT)
    if not result.answer_attempt or gold is None:
        assert result.correct is None
    else:
        assert result.correct in (True, False)
    assert result.reason


@pytest.fixture(scope="module", autouse=True)
def _warm_math_verify():
    """The first math-verify call imports sympy (seconds): not part of any timing below."""
    answers_match("\\frac{1}{2}", "0.5")


# --------------------------------------------------------------------------- (1) never raises, bounded time


@settings(parent=settings.get_profile(PROFILE))
@given(reply=replies, gold=golds)
@example(reply="\ud800", gold="42")
@example(reply="The answer is " + "9" * 4000 + ".", gold="1/3")
@example(reply="\\boxed{" + "9" * 4000 + "}", gold="0.5")
@example(reply="\\boxed{" * 500 + "42" + "}" * 500, gold="42")
@example(reply="{" * 10_000 + "42", gold="42")
@example(reply="1/" + "1" * 4400, gold="1/" + "0" * 4301)  # past int()'s digit limit
@example(reply="The answer is " + "1" + "0" * 4301 + "/1", gold="1" + "0" * 4301)
@example(reply="\\boxed{9^{9^{9}}}", gold="42")
@example(reply="\\boxed{(10^{100})!}", gold="42")
@example(reply="The answer is 42." + "\\frac{" * 300, gold="42")
def test_judge_never_raises_and_is_fast(reply, gold):
    result, seconds = _judge_timed(reply, gold)
    _well_formed(result, gold)
    assert seconds < SLOW_SECONDS, (seconds, reply[:200])


@settings(parent=settings.get_profile(PROFILE), max_examples=40)
@given(piece=st.one_of(st.sampled_from(CHUNKS), st.text(min_size=1, max_size=30), numbers_text), tail=replies)
@example(piece="1 or ", tail="42")
@example(piece="\\boxed{1}", tail="")
@example(piece="=", tail="42")
@example(piece="\\frac{", tail="")
@example(piece="If not, 3. ", tail="")
def test_long_adversarial_replies_are_fast(piece, tail):
    """A reply of 100k characters repeating any piece costs about as much as a short one."""
    reply = piece * (LONG_REPLY_CHARS // max(1, len(piece))) + tail
    result, seconds = _judge_timed(reply, "42")
    _well_formed(result, "42")
    assert seconds < SLOW_SECONDS, (seconds, piece, tail[:100])


# --------------------------------------------------------------------------- (2) hedges earn nothing

HEDGE_TEMPLATES = [
    "\\boxed{{{a} \\lor {b}}}",
    "\\boxed{{{a} \\vee {b}}}",
    "\\boxed{{{a} \\quad {b}}}",
    "\\boxed{{\\begin{{cases}}{a}\\\\{b}\\end{{cases}}}}",
    "\\boxed{{{a} \\leq x \\leq {b}}}",
    "\\boxed{{{a} \\text{{ or }} {b}}}",
    "\\boxed{{{a} \\;\\text{{or}}\\; {b}}}",
    "\\boxed{{\\{{{a}, {b}\\}}}}",
    "\\boxed{{{a}, {b}}}",
    "\\boxed{{[{a}, {b}]}}",
    "\\boxed{{x \\in [{a}, {b}]}}",
    "\\boxed{{{a} \\approx {b}}}",
    "\\boxed{{{a} \\sim {b}}}",
    "\\boxed{{{a}}} or \\boxed{{{b}}}",
    "\\boxed{{{a}}}\n\n\\boxed{{{b}}}",
    "\\boxed{{{a}}}. The answer is {b}.",
    "\\boxed{{x = {a}, y = {b}}}",
    "\\boxed{{{a} ≤ x ≤ {b}}}",
    "\\boxed{{{a} ∨ {b}}}",
    "The answer is {a}. Or maybe {b}.",
    "The answer is {a}, or possibly {b}.",
    "The answer is {a}, or perhaps {b}.",
    "The answer is either {a} or {b}.",
    "The answer is {a} or {b}.",
    "The answer is {a} (or {b}).",
    "The answer is {a}. Alternatively, {b}.",
    "The answer is {a}. If not, {b}.",
    "The answer is {a}. Is it {b}?",
    "The answer is {a}; {b} is also possible.",
    "The answer is between {a} and {b}.",
    "The answer is {a} to {b}.",
    "The answer is {a}~{b}.",
    "The answer is ${a}/${b}.",
    "The answer is {a} | {b}.",
    "Final answer: {a} or {b}",
    "So she has {a} or {b} apples left.",
    "It could be {a} or {b}.",
    "{a}\n{b}",
    "The answer is {a}. The answer is {b}.",
    "The answer is $\\{{{a}, {b}\\}}$.",
]
BOUND_TEMPLATES = [
    "\\boxed{{x \\geq {a}}}",
    "\\boxed{{x < {a}}}",
    "\\boxed{{\\approx {a}}}",
    "\\boxed{{{a} \\pm 1}}",
    "\\boxed{{{a}+}}",
    "\\boxed{{{a} \\text{{ or more}}}}",
    "The answer is at least {a}.",
    "The answer is at most {a}.",
    "The answer is {a} or more.",
    "The answer is about {a}.",
    "The answer is approximately {a}.",
    "The answer is ~{a}.",
    "The answer is {a}+.",
    "So she has at least {a} apples.",
]

plain_numbers = st.one_of(
    st.integers(0, 10**6).map(str),
    st.decimals(0, 1000, places=2, allow_nan=False, allow_infinity=False).map(str),
)


def _value(text: str) -> Fraction:
    return Fraction(normalize_number(text))


@settings(parent=settings.get_profile(PROFILE))
@given(template=st.sampled_from(HEDGE_TEMPLATES), a=plain_numbers, b=plain_numbers)
def test_hedges_between_two_numbers_are_never_correct(template, a, b):
    if _value(a) == _value(b):
        return
    reply = template.format(a=a, b=b)
    for gold in (a, b):
        result = JUDGE.judge(reply, gold)
        assert result.correct is not True, (reply, gold, result)
    assert JUDGE.judge(reply, a).kind is ReplyKind.HEDGE, reply


@settings(parent=settings.get_profile(PROFILE))
@given(template=st.sampled_from(BOUND_TEMPLATES), a=plain_numbers)
def test_bounds_and_approximations_are_never_correct(template, a):
    reply = template.format(a=a)
    result = JUDGE.judge(reply, a)
    assert result.kind is ReplyKind.HEDGE and result.correct is None, (reply, result)


@settings(parent=settings.get_profile(PROFILE))
@given(reply=replies)
def test_no_reply_is_correct_for_two_different_golds(reply):
    """Whatever a reply says, at most one value (up to equivalent forms) is graded correct."""
    candidates = list(dict.fromkeys(re.findall(r"-?\d+(?:\.\d+)?(?:/\d+)?", reply)))[:6]
    correct = [gold for gold in candidates if JUDGE.judge(reply, gold).correct]
    for gold in correct[1:]:
        assert answers_match(gold, correct[0]), (reply[:300], correct)


# --------------------------------------------------------------------------- (3) honest answers count

HONEST_TEMPLATES = [
    "The answer is {g}.",
    "\\boxed{{{g}}}",
    "The final answer is $\\boxed{{{g}}}$.",
    "#### {g}",
    "Final answer: {g}",
    "Answer: {g}",
    "So she has {g} apples left.",
    "\\boxed{{{g}\\text{{ dollars}}}}",
    "\\boxed{{x = {g}}}",
    "\\boxed{{{g}^\\circ}}",
    "\\boxed{{{g}\\%}}",
    "The answer is {g}. Final answer: {g}",
    "**{g}**",
    "{g}",
    "First, {x} + {y} = {s}. Then {s} * 2 = {d}. So the answer is {g}.",
    "She had {x} apples and bought {y} more, so {x} + {y} = {s}.\n\nThe answer is {g}.",
    "The answer is {g}.\n\nHere is why: {x} + {y} = {s}, and {s} * 2 = {d}.",
    "\\boxed{{{g}}}\n\nIf we add {x} and {y}, we get {s}.",
]


@settings(parent=settings.get_profile(PROFILE))
@given(
    template=st.sampled_from(HONEST_TEMPLATES),
    gold=st.one_of(
        st.integers(-(10**6), 10**6), st.decimals(-1000, 1000, places=2, allow_nan=False, allow_infinity=False)
    ),
    commas=st.booleans(),
    x=st.integers(1, 500),
    y=st.integers(1, 500),
)
def test_honest_answers_are_correct(template, gold, commas, x, y):
    if "%" in template or "circ" in template or "apples" in template:
        gold = abs(gold)
    text = f"{gold:,}" if commas and "boxed" not in template else str(gold)
    reply = template.format(g=text, x=x, y=y, s=x + y, d=2 * (x + y))
    result = JUDGE.judge(reply, str(gold))
    assert result.kind is ReplyKind.ANSWER_ATTEMPT and result.correct is True, (reply, result)


@settings(parent=settings.get_profile(PROFILE))
@given(gold=st.integers(1000, 10**9))
def test_honest_thousands_separators_are_correct(gold):
    for reply in (
        f"The answer is {gold:,}.",
        "\\boxed{" + f"{gold:,}".replace(",", "{,}") + "}",
        f"\\boxed{{\\${gold:,}}}",
    ):
        result = JUDGE.judge(reply, str(gold))
        assert result.correct is True, (reply, result)
