#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the offline default: the bundled SmolLM2-135M plays
# both the assistant and a prompted user on procedural sharded math tasks. Extra arguments go to
# `userlm-env rollout` (e.g. --episodes 10) and win over the flags below.
# --max-turns 6 keeps the quickstart at ~1.5 minutes (the CLI's default is the env's, 12).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/userlm-env rollout --max-turns 6 --out runs/quickstart.jsonl --overwrite "$@"
