"""The code judge: is a reply an answer attempt, and does its function pass the task's hidden tests?

Rules of :class:`CodeJudge`:

1. **Missing.** An empty reply is ``missing``.
2. **Answer attempt.** A reply from which :func:`~userlm_env.code.extract.extract_solution` gets a
   function is an ``answer_attempt`` (LiC: code is the answer, whatever the prose around it). The
   task's ``metadata["preamble"]`` (a HumanEval prompt's imports such as ``from typing import List``
   and its helper functions) is prepended, then the code
   runs in the sandbox against the task's hidden tests: ``correct`` = every test passed.
3. **Broken code.** A reply with a ``def name(`` line but no function that parses is an
   ``answer_attempt`` that fails without running (``error_type == "syntax"``).
4. **No code.** Otherwise the prose (code blocks removed) is classified by the math
   :class:`~userlm_env.judge.rule.RuleJudge` without a gold answer: questions stay ``clarification`` /
   ``interrogation``, refusals ``refuse``; anything it would call an answer or a hedge (a number is
   not a program) becomes ``discussion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from userlm_env.code.extract import ExtractedCode, extract_solution, has_code, strip_code
from userlm_env.code.sandbox import ExecutionResult, Sandbox, default_sandbox
from userlm_env.judge.rule import RuleJudge
from userlm_env.judge.types import Judgement, ReplyKind
from userlm_env.tasks.task import ShardedTask

__all__ = ["EMPTY_CODE_INFO", "CodeJudge", "CodeJudgement"]


@dataclass(frozen=True)
class CodeJudgement(Judgement):
    """A :class:`~userlm_env.judge.types.Judgement` plus the code-specific details.

    Attributes:
        execution: the sandbox result (``None`` when nothing ran).
        extracted: the extracted solution (``None`` when the reply has no function).
    """

    execution: ExecutionResult | None = None
    extracted: ExtractedCode | None = None

    def code_info(self) -> dict[str, Any]:
        """The code fields of ``info``: tests passed/failed/total, error type and message, seconds."""
        ex = self.execution
        if ex is None:
            error_type = "syntax" if self.answer_attempt else None
            return {
                "tests_passed": 0 if self.answer_attempt else None,
                "tests_failed": None,
                "tests_total": None,
                "error_type": error_type,
                "execution_error": "no complete function could be parsed" if error_type else None,
                "execution_seconds": None,
            }
        return {
            "tests_passed": ex.tests_passed,
            "tests_failed": ex.tests_failed,
            "tests_total": ex.tests_total,
            "error_type": ex.error_type,
            "execution_error": ex.error,
            "execution_seconds": round(ex.seconds, 4),
        }


EMPTY_CODE_INFO = CodeJudgement(ReplyKind.MISSING, False, None, None).code_info()
"""The code fields of ``info`` when no reply was judged (reset)."""


class CodeJudge:
    """Rule-based classification plus sandboxed grading of code replies (see the module rules).

    Args:
        sandbox: where code runs (default: the process-wide :func:`default_sandbox`).
    """

    def __init__(self, sandbox: Sandbox | None = None):
        self._sandbox = sandbox
        self._prose = RuleJudge()

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox (created on first use)."""
        if self._sandbox is None:
            self._sandbox = default_sandbox()
        return self._sandbox

    def judge(self, reply: str, task: ShardedTask) -> CodeJudgement:
        """Classify ``reply`` and, for an answer attempt, run ``task``'s hidden tests on it.

        Raises:
            TypeError: ``task`` is not a :class:`ShardedTask` (a code reply is graded on the task's tests).
        """
        if not isinstance(task, ShardedTask):
            raise TypeError(f"CodeJudge.judge needs the ShardedTask (its hidden tests), got {type(task).__name__}")
        if not isinstance(reply, str) or not reply.strip():
            return CodeJudgement(ReplyKind.MISSING, False, None, None, reason="empty reply")
        entry = task.metadata["entry_point"]
        extracted = extract_solution(reply, entry)
        if extracted is None:
            if has_code(reply) and "def " in reply:
                return CodeJudgement(
                    ReplyKind.ANSWER_ATTEMPT, True, None, False, reason="code with no complete function"
                )
            return self._no_code(reply)
        preamble = task.metadata.get("preamble") or ""
        code = f"{preamble}\n\n{extracted.code}" if preamble else extracted.code
        execution = self.run_tests(code, task)
        summary = f"{execution.tests_passed}/{execution.tests_total if execution.tests_total is not None else '?'}"
        reason = f"code ({extracted.source}, {extracted.function}): {summary} tests passed"
        if execution.error_type:
            reason += f" ({execution.error_type})"
        return CodeJudgement(
            ReplyKind.ANSWER_ATTEMPT,
            True,
            extracted.code,
            execution.passed,
            reason=reason,
            execution=execution,
            extracted=extracted,
        )

    def judge_task(self, reply: str, task: ShardedTask) -> CodeJudgement:
        """The older name of :meth:`judge`."""
        return self.judge(reply, task)

    def run_tests(self, code: str, task: ShardedTask) -> ExecutionResult:
        """Run ``task``'s hidden tests on ``code`` in the sandbox.

        Never raises: a malformed task or an internal sandbox failure is a failed execution with
        ``error_type="sandbox"`` (the sandbox itself turns anything the code does into a result).
        """
        try:
            tests = task.metadata["tests"]
            entry = task.metadata["entry_point"]
            if tests["type"] == "calls":
                return self.sandbox.run_calls(code, entry, tests["cases"])
            return self.sandbox.run_script(code, entry, tests["code"])
        except Exception as err:  # noqa: BLE001 - grading must not raise out of env.step
            return ExecutionResult(
                passed=False, tests_passed=0, error_type="sandbox", error=f"{type(err).__name__}: {err}"[:500]
            )

    def _no_code(self, reply: str) -> CodeJudgement:
        prose = strip_code(reply)
        verdict = self._prose.judge(prose, None) if prose.strip() else None
        if verdict is None:
            return CodeJudgement(ReplyKind.DISCUSSION, False, None, None, reason="code block without a function")
        if verdict.kind in (ReplyKind.ANSWER_ATTEMPT, ReplyKind.HEDGE):
            return CodeJudgement(ReplyKind.DISCUSSION, False, None, None, reason="no code: not an answer attempt")
        return CodeJudgement(verdict.kind, False, None, None, reason=f"no code: {verdict.reason}")
