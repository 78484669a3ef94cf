"""Code tasks for ``UserLM-Code-v0``: sandboxed execution, solution extraction, sharded code tasks.

- :mod:`userlm_env.code.sandbox`: run untrusted code with limits (``Sandbox``, ``SandboxConfig``).
- :mod:`userlm_env.code.extract`: the last complete function (or the entry point) of a reply.
- :mod:`userlm_env.code.procedural`, :mod:`~userlm_env.code.humaneval`, :mod:`~userlm_env.code.lic_code`:
  task sources; :func:`make_code_task_source` turns a spec string into one.

The code judge (``CodeJudge``: classify a reply and grade it on the hidden tests) lives with the
other judges in :mod:`userlm_env.judge.code`; ``CodeJudge`` and ``CodeJudgement`` are still importable
from here and from :mod:`userlm_env.code.judge`.
"""

from typing import Any

from userlm_env.code.extract import ExtractedCode, extract_solution
from userlm_env.code.procedural import ProceduralCodeTasks
from userlm_env.code.sandbox import ExecutionResult, Sandbox, SandboxConfig, TestCase, default_sandbox
from userlm_env.code.tasks import make_code_task_source

__all__ = [
    "CodeJudge",
    "CodeJudgement",
    "ExecutionResult",
    "ExtractedCode",
    "ProceduralCodeTasks",
    "Sandbox",
    "SandboxConfig",
    "TestCase",
    "default_sandbox",
    "extract_solution",
    "make_code_task_source",
]


def __getattr__(name: str) -> Any:
    """``CodeJudge`` and ``CodeJudgement``, imported on first use.

    ``userlm_env.judge.code`` imports this package's extraction and sandbox, so importing it back here
    at import time would be circular.
    """
    if name in ("CodeJudge", "CodeJudgement"):
        from userlm_env.judge import code  # noqa: PLC0415

        return getattr(code, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
