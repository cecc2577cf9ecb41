#!/usr/bin/env bash
# Install Debian's Chromium for the web UI tests (Playwright drives it by executable path; there is
# no `playwright install` download here). Quiet and non-interactive; a no-op when it is already there.
# Usage: bash .ci/chromium.sh
set -euo pipefail
bin=${PHOTOINDEX_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$bin" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
  ($sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium fonts-dejavu-core >/dev/null) >&2
fi
# (Debian's wrapper script complains on stderr about some shells' `[`: only the version line matters)
"$bin" --version 2>/dev/null | head -n 1 >&2
