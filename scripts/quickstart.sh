#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the offline default: the bundled SmolLM2-135M plays
# both the assistant and a prompted user on procedural sharded math tasks. Extra arguments go to
# `userlm-env rollout` (e.g. --episodes 10) and win over the flags below.
#
# The models run on the fastest engine available (`engine=auto`): in-process llama.cpp on a CPU. The
# first run builds llama-cpp-python from source (scripts/install_llama_server.sh, ~5-7 minutes on 2
# cores; later runs skip it); USERLM_ENV_FAST_ENGINE=0 skips the build and runs on transformers.
# --max-turns 6 keeps the quickstart short (the CLI's default is the env's, 12).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${USERLM_ENV_FAST_ENGINE:-1}" != "0" ]; then
    bash scripts/install_llama_server.sh || echo "llama.cpp could not be built: the quickstart runs on transformers"
fi
.venv/bin/userlm-env rollout --max-turns 6 --out runs/quickstart.jsonl --overwrite "$@"
