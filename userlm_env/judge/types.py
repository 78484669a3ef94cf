"""What every judge shares: the reply categories, the verdict, and the one interface.

A judge is anything with ``judge(reply, task) -> Judgement`` (the :class:`Judge` protocol): the
math :class:`~userlm_env.judge.rule.RuleJudge` and :class:`~userlm_env.judge.llm.LLMJudge`, the
:class:`~userlm_env.judge.code.CodeJudge`, or a custom object. The task is the hidden
:class:`~userlm_env.tasks.task.ShardedTask`: a math judge grades against ``task.answer``, the code
judge runs ``task.metadata["tests"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from userlm_env.grading import answers_match
from userlm_env.tasks.task import ShardedTask

__all__ = [
    "MATH_KINDS",
    "MAX_REASON_VALUE_CHARS",
    "Judge",
    "Judgement",
    "ReplyKind",
    "attempt",
    "math_gold",
    "not_attempt",
    "short",
]

MATH_KINDS = ("math",)
"""Task kinds the math judges (rule and LLM) can grade."""


class ReplyKind(str, Enum):
    """Category of an assistant reply (Lost in Conversation)."""

    ANSWER_ATTEMPT = "answer_attempt"
    CLARIFICATION = "clarification"
    INTERROGATION = "interrogation"
    DISCUSSION = "discussion"
    HEDGE = "hedge"
    REFUSE = "refuse"
    MISSING = "missing"


@dataclass(frozen=True)
class Judgement:
    """Verdict on one assistant reply.

    Attributes:
        kind: the reply's category.
        answer_attempt: whether the reply commits to a final answer (graded).
        extracted_answer: the committed answer (canonical number, or LaTeX from a box), or
            ``None`` when there is none or it could not be extracted.
        correct: the grade of an answer attempt; ``None`` when the reply is not an answer
            attempt or no gold answer was given.
        candidates: the distinct numbers found in the answer span (canonical strings).
        reason: short human-readable explanation, for logs.
    """

    kind: ReplyKind
    answer_attempt: bool
    extracted_answer: str | None
    correct: bool | None
    candidates: tuple[str, ...] = ()
    reason: str = ""


@runtime_checkable
class Judge(Protocol):
    """The judge interface: anything with ``judge(reply, task) -> Judgement``.

    ``RuleJudge``, ``LLMJudge``, ``CodeJudge`` and any custom object with this method are judges;
    both envs call ``env.judge.judge(reply, task)`` once per assistant reply, before changing any
    episode state (a judge that raises leaves the env as it was).
    """

    def judge(self, reply: str, task: ShardedTask) -> Judgement:
        """Classify ``reply`` and grade its answer against the hidden ``task``."""
        ...


MAX_REASON_VALUE_CHARS = 40
"""Values quoted in a :attr:`Judgement.reason` are cut to this length."""


def short(values: str | Iterable[str | None]) -> str:
    """Values for a reason string, each cut to :data:`MAX_REASON_VALUE_CHARS`."""
    items = [values] if isinstance(values, str) else [v for v in values if v]
    cut = [v if len(v) <= MAX_REASON_VALUE_CHARS else v[:MAX_REASON_VALUE_CHARS] + "..." for v in items]
    return ", ".join(cut)


def not_attempt(kind: ReplyKind, reason: str, candidates: Iterable[str] = ()) -> Judgement:
    """A verdict that is not an answer attempt (never graded)."""
    return Judgement(kind, False, None, None, tuple(candidates), reason)


def attempt(value: str | None, gold: str | None, reason: str, candidates: Iterable[str] = ()) -> Judgement:
    """An answer attempt committing to ``value``, graded against ``gold`` (``None``: not graded)."""
    if gold is None:
        correct = None
    else:
        correct = value is not None and answers_match(value, gold)
    return Judgement(ReplyKind.ANSWER_ATTEMPT, True, value, correct, tuple(candidates), reason)


def math_gold(task: ShardedTask | str | None, *, kind: str | None = None, judge: str = "the judge") -> str | None:
    """The gold answer a math judge grades against.

    Args:
        task: the hidden task (its ``answer`` is the gold), or, in the older form, the gold answer
            itself (``None``: classify without grading).
        kind: the task family; default ``task.kind`` for a task, ``"math"`` otherwise.
        judge: the judge's name, for the error message.

    Raises:
        ValueError: the task is not a math task.
    """
    if isinstance(task, ShardedTask):
        kind, gold = kind or task.kind, task.answer
    else:
        gold = task
    kind = kind or "math"
    if kind not in MATH_KINDS:
        raise ValueError(f"{judge} cannot judge {kind!r} tasks; supported kinds: {MATH_KINDS}")
    return gold
