#!/usr/bin/env bash
# Install headless Chromium (Debian package `chromium`), used by tests/test_report.py to open the HTML
# evaluation report in a real browser and check that its tables, figures and transcripts render.
# Idempotent: does nothing when `chromium` is already on PATH.
set -euo pipefail
exec bash "$(dirname "$0")/install_deb.sh" chromium chromium --version
