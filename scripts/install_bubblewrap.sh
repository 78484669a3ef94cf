#!/usr/bin/env bash
# Install bubblewrap (Debian package `bubblewrap`, the `bwrap` command): the code sandbox's first
# isolation layer (mount, pid and network namespaces; see userlm_env/code/sandbox.py).
# Idempotent: does nothing when `bwrap` is already on PATH.
set -euo pipefail
exec bash "$(dirname "$0")/install_deb.sh" bwrap bubblewrap --version
