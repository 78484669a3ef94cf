"""Task specs for code environments: ``make_code_task_source``.

Spec strings (the ``tasks=`` argument of ``UserLM-Code-v0``):

- ``None``, ``"code:procedural"`` (or ``"procedural"``): the offline generator of small
  function-writing tasks; ``"code:procedural:T1,T2"`` restricts it to some templates
  (:data:`userlm_env.code.procedural.TEMPLATES`).
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

import difflib
from collections.abc import Sequence
from pathlib import Path

from userlm_env.tasks.source import TaskList, TaskSource, make_task_source
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


CODE_SPEC_FORMS = (
    "code:procedural",
    "code:procedural:T1,T2",
    "humaneval",
    "humaneval:test",
    "humaneval:PATH",
    "lic-code:PATH",
)
"""The accepted forms of a code task spec string (PATH = a local file)."""


def _unknown(spec: str, why: str = "unknown code task spec") -> ValueError:
    guesses = difflib.get_close_matches(spec, CODE_SPEC_FORMS, n=2, cutoff=0.5)
    if not guesses and ":" in spec:
        guesses = difflib.get_close_matches(spec.split(":", 1)[0], [f.split(":")[0] for f in CODE_SPEC_FORMS], n=1)
    hint = f" Did you mean {' or '.join(repr(g) for g in dict.fromkeys(guesses))}?" if guesses else ""
    return ValueError(f"{why}: {spec!r}.{hint} Valid forms: {', '.join(CODE_SPEC_FORMS)}.")


def make_code_task_source(spec: str | TaskSource | Sequence[ShardedTask] | None) -> TaskSource:
    """Build a code task source from a spec (see the module docstring).

    Raises:
        ValueError: unknown spec (with close matches), unknown template, bad file content.
        FileNotFoundError: a PATH spec whose file does not exist.
        RuntimeError: the hub dataset cannot be loaded (offline).
    """
    from userlm_env.code.humaneval import load_humaneval_hub, load_humaneval_jsonl  # noqa: PLC0415
    from userlm_env.code.lic_code import load_lic_code_json  # noqa: PLC0415
    from userlm_env.code.procedural import ProceduralCodeTasks  # noqa: PLC0415

    if spec is None:
        return ProceduralCodeTasks()
    if not isinstance(spec, str):
        return make_task_source(spec)
    text = spec.strip()
    kind, _, arg = text.partition(":")
    kind = kind.lower()
    if kind == "procedural" and not arg:
        return ProceduralCodeTasks()
    if kind == "code":
        sub, _, templates = arg.partition(":")
        if sub.lower() != "procedural":
            raise _unknown(text)
        names = tuple(t.strip() for t in templates.split(",") if t.strip())
        return ProceduralCodeTasks(names or None, name="code-procedural" + (f"-{'-'.join(names)}" if names else ""))
    if kind == "humaneval":
        if not arg:
            return load_humaneval_hub("test")
        if arg == "test" and not Path(arg).is_file():
            return load_humaneval_hub(arg)
        return load_humaneval_jsonl(arg)
    if kind in ("lic-code", "lic_code", "liccode"):
        if not arg:
            raise _unknown(text, "the 'lic-code' task spec needs a file path ('lic-code:PATH')")
        return load_lic_code_json(arg)
    raise _unknown(text)


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
