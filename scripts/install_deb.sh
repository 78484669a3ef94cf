#!/usr/bin/env bash
# Install a Debian package unless its command is already on PATH (idempotent; as root or with sudo).
#
# Usage: scripts/install_deb.sh COMMAND PACKAGE [VERSION_FLAG]
#   e.g. scripts/install_deb.sh bwrap bubblewrap --version
set -euo pipefail
command_name="$1" package="$2" version_flag="${3:---version}"

if command -v "$command_name" >/dev/null 2>&1; then
    echo "$package already installed: $("$command_name" "$version_flag" 2>/dev/null || echo 'version unknown')"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install_deb.sh: not root and no sudo; install the Debian package '$package' by hand." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "$package"

echo "$package installed: $("$command_name" "$version_flag")"
