"""Judging one assistant reply: what kind of reply it is, and whether its answer is right.

The categories are those of Lost in Conversation (see ``DESIGN.md`` section 1):
``answer_attempt``, ``clarification``, ``interrogation``, ``discussion``, ``hedge``,
``refuse`` and ``missing``. Only answer attempts are graded.

One interface for every task family: ``judge(reply, task) -> Judgement`` (the :class:`Judge`
protocol), where ``task`` is the hidden :class:`~userlm_env.tasks.task.ShardedTask`. The envs make
exactly that call, so any object with this method can judge.

Modules, one job each:

- :mod:`~userlm_env.judge.types`: :class:`ReplyKind`, :class:`Judgement`, the :class:`Judge` protocol.
- :mod:`~userlm_env.judge.rule`: :class:`RuleJudge`, the rule-based math judge (its docstring lists
  the rules); :mod:`~userlm_env.judge.patterns` holds its regular expressions and word lists,
  :mod:`~userlm_env.judge.text` reads a reply into numbers and sentences.
- :mod:`~userlm_env.judge.llm`: :class:`LLMJudge`, a language model classifies and extracts, grading
  stays :func:`~userlm_env.grading.answers_match` (the answer comparison, shared by all math judges).
- :mod:`~userlm_env.judge.code`: :class:`CodeJudge`, runs the function of a code reply on the task's
  hidden tests in the sandbox.

>>> from userlm_env.judge import RuleJudge
>>> from userlm_env.tasks import Shard, ShardedTask
>>> task = ShardedTask("t", "How much? 6 boxes of 7.", (Shard(1, "How much?"), Shard(2, "6 boxes of 7.")), "42")
>>> RuleJudge().judge("6 * 7 = 42, so the answer is 42.", task).correct
True
"""

from __future__ import annotations

from userlm_env.judge.code import EMPTY_CODE_INFO, CodeJudge, CodeJudgement
from userlm_env.judge.llm import LLM_JUDGE_PROMPT, MAX_LLM_REPLY_CHARS, LLMJudge
from userlm_env.judge.patterns import NUMBER_TOKEN
from userlm_env.judge.rule import (
    CLARIFICATION_MAX_QUESTIONS,
    MAX_CONNECTOR_CHARS,
    MAX_POINTER_WORDS,
    SUPPORTED_KINDS,
    RuleJudge,
)
from userlm_env.judge.text import HEAD_CHARS, MAX_BOX_CHARS, SCAN_CHARS
from userlm_env.judge.types import MAX_REASON_VALUE_CHARS, Judge, Judgement, ReplyKind

__all__ = [
    "CLARIFICATION_MAX_QUESTIONS",
    "EMPTY_CODE_INFO",
    "HEAD_CHARS",
    "LLM_JUDGE_PROMPT",
    "MAX_BOX_CHARS",
    "MAX_CONNECTOR_CHARS",
    "MAX_LLM_REPLY_CHARS",
    "MAX_POINTER_WORDS",
    "MAX_REASON_VALUE_CHARS",
    "NUMBER_TOKEN",
    "SCAN_CHARS",
    "SUPPORTED_KINDS",
    "CodeJudge",
    "CodeJudgement",
    "Judge",
    "Judgement",
    "LLMJudge",
    "ReplyKind",
    "RuleJudge",
    "make_judge",
]


def make_judge(spec: str | Judge | None = None) -> Judge:
    """Build the math env's judge from its ``judge=`` argument.

    Args:
        spec: ``None`` or ``"rule"`` for a :class:`RuleJudge`; ``"llm:MODEL"`` for an
            :class:`LLMJudge` on a local model; a judge object (anything with a
            ``judge(reply, task)`` method: the :class:`Judge` protocol) is returned unchanged.

    Returns:
        The judge.

    Raises:
        ValueError: unknown string spec (``"llm"`` needs a generator: build an
            :class:`LLMJudge` and pass it).
        TypeError: anything else.
    """
    if spec is None:
        return RuleJudge()
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name in {"rule", "rules", "rule_based"}:
            return RuleJudge()
        if name.startswith("llm:") and spec.strip()[4:]:
            from userlm_env.backends.engines import make_backend

            backend = make_backend(spec.strip()[4:])
            return LLMJudge(generate=backend.chat_completer())
        if name == "llm":
            raise ValueError(
                "judge='llm' needs a model: judge='llm:MODEL' (hub id, dir, .gguf or smollm2-135m), or pass "
                "LLMJudge(generate=...) built with any generate(prompts) -> completions callable"
            )
        raise ValueError(f"unknown judge {spec!r}; expected 'rule', 'llm:MODEL', a RuleJudge or an LLMJudge instance")
    if callable(getattr(spec, "judge", None)):
        return spec
    raise TypeError(f"judge must be None, 'rule' or an object with judge(reply, task), got {type(spec).__name__}")
