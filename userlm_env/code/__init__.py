"""Code tasks for ``UserLM-Code-v0``: sandboxed execution, solution extraction, sharded code tasks.

- :mod:`userlm_env.code.sandbox`: run untrusted code with limits (``Sandbox``, ``SandboxConfig``).
- :mod:`userlm_env.code.extract`: the last complete function (or the entry point) of a reply.
- :mod:`userlm_env.code.judge`: classify a reply and grade it on the hidden tests (``CodeJudge``).
- :mod:`userlm_env.code.procedural`, :mod:`~userlm_env.code.humaneval`, :mod:`~userlm_env.code.lic_code`:
  task sources; :func:`make_code_task_source` turns a spec string into one.
"""

from userlm_env.code.extract import ExtractedCode, extract_solution
from userlm_env.code.judge import CodeJudge, CodeJudgement
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
