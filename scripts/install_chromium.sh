#!/usr/bin/env bash
# Install headless Chromium (Debian package `chromium`), used by tests/test_report.py to open the HTML
# evaluation report in a real browser and check that its tables, figures and transcripts render.
# Idempotent: does nothing when `chromium` is already on PATH.
#
# Usage: scripts/install_chromium.sh   (as root, or as a user with sudo)
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(chromium --version 2>/dev/null || echo 'version unknown')"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install_chromium.sh: not root and no sudo; install the Debian package 'chromium' by hand." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends chromium

echo "chromium installed: $(chromium --version)"
