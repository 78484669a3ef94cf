#!/usr/bin/env bash
# Install bubblewrap (Debian package `bubblewrap`, the `bwrap` command): the code sandbox's first
# isolation layer (mount, pid and network namespaces; see userlm_env/code/sandbox.py).
# Idempotent: does nothing when `bwrap` is already on PATH.
#
# Usage: scripts/install_bubblewrap.sh   (as root, or as a user with sudo)
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then
    echo "bubblewrap already installed: $(bwrap --version)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install_bubblewrap.sh: not root and no sudo; install the Debian package 'bubblewrap' by hand." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends bubblewrap

echo "bubblewrap installed: $(bwrap --version)"
