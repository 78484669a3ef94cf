"""Code task sources for ``UserLM-Code-v0``: ``make_code_task_source`` and the RL-safety checks.

Spec strings (the ``tasks=`` argument of ``UserLM-Code-v0``; parsed, with the math ones, in
:mod:`userlm_env.tasks.spec`):

- ``None``, ``"code:procedural"`` (or bare ``"procedural"``, which the code env reads as
  ``code:procedural``): the offline generator of small function-writing tasks;
  ``"code:procedural:T1,T2"`` restricts it to some templates (:data:`userlm_env.code.procedural.TEMPLATES`).
- ``"humaneval"`` / ``"humaneval:test"``: ``openai/openai_humaneval`` from the Hugging Face hub
  (network or a local ``datasets`` cache), docstrings sharded automatically.
- ``"humaneval:PATH"``: a local jsonl with the HumanEval fields (task_id, prompt,
  canonical_solution, test, entry_point).
- ``"lic-code:PATH"``: the code records of a Lost-in-Conversation sharded JSON file.

A ``TaskSource`` or a list of ``ShardedTask`` is accepted as is; every task must be ``kind ==
"code"`` with ``metadata["entry_point"]`` and ``metadata["tests"]`` (checked when drawn).

RL safety: a task is RL-safe when it is graded by call tests only (``tests["type"] == "calls"``:
inputs in, plain outputs compared in the host) and its ``metadata["rl_safe"]`` is not ``False``
(:func:`task_is_rl_safe`). HumanEval ``check`` tests that could not be converted run inside the
candidate's process, where a policy can forge a pass; :func:`count_not_rl_safe` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence

from userlm_env.tasks.source import TaskList, TaskSource, make_task_source
from userlm_env.tasks.spec import CODE_SPEC_FORMS, TaskSpec
from userlm_env.tasks.task import ShardedTask

__all__ = [
    "CODE_SPEC_FORMS",
    "NotRLSafeWarning",
    "check_code_task",
    "count_not_rl_safe",
    "make_code_task_source",
    "task_is_rl_safe",
]


class NotRLSafeWarning(UserWarning):
    """A code task source holds tasks whose tests run in the candidate's process (forgeable by a policy)."""


def make_code_task_source(spec: str | TaskSpec | TaskSource | Sequence[ShardedTask] | None) -> TaskSource:
    """Build a code task source: ``make_task_source(spec, family="code")`` (see :mod:`userlm_env.tasks.spec`).

    ``None`` and bare ``"procedural"`` give ``code:procedural``; a math spec (``gsm8k``,
    ``procedural:easy``, ...) is an error that says to use ``UserLM-Math-v0``.

    Raises:
        ValueError: unknown spec (with close matches), a math spec, unknown template, bad file content.
        FileNotFoundError: a PATH spec whose file does not exist.
        RuntimeError: the hub dataset cannot be loaded (offline).
    """
    return make_task_source(spec, family="code")


def check_code_task(task: ShardedTask) -> None:
    """Raise ``ValueError`` unless ``task`` is a code task with an entry point and hidden tests."""
    if task.kind != "code":
        raise ValueError(f"task {task.task_id!r} is a {task.kind!r} task; the code env needs kind='code' tasks")
    tests = task.metadata.get("tests")
    if not isinstance(task.metadata.get("entry_point"), str) or not isinstance(tests, dict):
        raise ValueError(f"code task {task.task_id!r} needs metadata['entry_point'] and metadata['tests']")
    if tests.get("type") not in ("calls", "script"):
        raise ValueError(
            f"code task {task.task_id!r}: tests type must be 'calls' or 'script', got {tests.get('type')!r}"
        )


def task_is_rl_safe(task: ShardedTask) -> bool:
    """Whether ``task`` is graded only by host-compared call tests (see the module docstring)."""
    tests = task.metadata.get("tests")
    return isinstance(tests, dict) and tests.get("type") == "calls" and task.metadata.get("rl_safe", True) is not False


def count_not_rl_safe(source: TaskSource) -> tuple[int, int] | None:
    """``(not RL-safe, total)`` for a finite source (a ``TaskList``), else from its ``stats`` or ``None``.

    A generator such as ``code:procedural`` (call tests only, no ``not_rl_safe`` stat) gives ``None``.
    """
    if isinstance(source, TaskList):
        return sum(not task_is_rl_safe(t) for t in source), len(source)
    stats = source.stats
    if "not_rl_safe" in stats:
        return int(stats["not_rl_safe"]), int(stats.get("loaded", stats["not_rl_safe"]))
    return None
