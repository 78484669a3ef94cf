"""The verl adapter's tests (tests/verl_adapter/), run in .venv-verl from the main suite.

verl 0.9 pins ``transformers<5.11``, so it lives in a venv of its own (``scripts/install_verl_env.sh``;
``scripts/test.sh`` creates it). Here, where ``import verl`` fails, this test runs
``.venv-verl/bin/python -m pytest tests/verl_adapter`` in a subprocess (the same ``-m`` marker expression
and ``USERLM_ENV_STRICT_SKIPS``) and asserts it passed. In a venv that has verl, tests/verl_adapter/ is
collected directly and this wrapper has nothing to do.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VERL_PYTHON = REPO / ".venv-verl" / "bin" / "python"


def _verl_importable_here() -> bool:
    spec = importlib.util.find_spec("verl")
    return spec is not None and spec.origin is not None  # a namespace package (a stray folder) is not verl


def test_verl_adapter_suite_in_verl_venv(request):
    if _verl_importable_here():
        return  # tests/verl_adapter/ is collected in this very run
    if not VERL_PYTHON.is_file():
        pytest.skip(f"{VERL_PYTHON} not found: run `bash scripts/install_verl_env.sh` (verl needs its own venv)")
    command = [str(VERL_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/verl_adapter"]
    markexpr = request.config.getoption("markexpr", default="")
    if markexpr:
        command += ["-m", markexpr]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    output = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"tests/verl_adapter failed in .venv-verl (exit {result.returncode}):\n{output[-8000:]}"
    )
    summary = re.search(r"(\d+) passed", output)
    assert summary and int(summary.group(1)) > 0, f"tests/verl_adapter ran no test:\n{output[-4000:]}"
    print(output.strip().splitlines()[-1])  # the child's summary line, shown with -s / -rA
