#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test (test/web.test.ts drives it with playwright-core;
# `npx playwright install` cannot download browsers here). Idempotent and quiet.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
${SUDO} apt-get update -qq >/dev/null || true
${SUDO} apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
