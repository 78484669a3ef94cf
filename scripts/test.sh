#!/usr/bin/env bash
# Set up (scripts/setup.sh, scripts/install_llama_server.sh) and run the whole test suite, slow
# end-to-end tests included (real SmolLM2 episodes, a real llama.cpp server).
# Extra arguments go to pytest (e.g. -m "not slow" for the fast tests only).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real OpenAI-compatible server the HTTP backend tests run against (compiled once, ~5 min).
bash scripts/install_llama_server.sh
bash scripts/install_bubblewrap.sh  # the code sandbox's namespaces (tests run it with and without)
bash scripts/install_chromium.sh  # headless Chromium: tests/test_report.py opens the HTML report in it
bash scripts/install_verl_env.sh  # .venv-verl (verl pins transformers<5.11): tests/test_verl_adapter.py runs tests/verl_adapter/ there
# Every test must run here: a skip (missing model, server or shared data) fails the run.
USERLM_ENV_STRICT_SKIPS=1 .venv/bin/python -m pytest -q "$@"
