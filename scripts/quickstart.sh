#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the offline default: the bundled SmolLM2-135M plays
# both the assistant and a prompted user on procedural sharded math tasks. Extra arguments go to
# `userlm-env rollout` (e.g. --episodes 10).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/userlm-env rollout --out runs/quickstart.jsonl --overwrite "$@"
