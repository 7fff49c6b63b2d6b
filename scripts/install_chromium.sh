#!/usr/bin/env bash
# Installs Debian's `chromium` for the browser test (tests/ui/) when /usr/bin/chromium is missing.
# Playwright drives this system browser through `executable_path`: a browser download at run
# time (`playwright install`) is not possible on CI machines, so Debian's package is the browser.
# Idempotent and quiet when the browser is already there; needs root (CI runs as root) or sudo.
set -euo pipefail
CHROMIUM="${MOMENTS_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "install_chromium.sh: $CHROMIUM is missing and this user cannot apt-get install it;" \
    "install Debian's chromium package (or set MOMENTS_CHROMIUM to a Chromium binary)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install_chromium.sh: installing Debian's chromium (for tests/ui/)" >&2
# The package lists may be missing or stale on a fresh machine: update first, once.
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
test -x "$CHROMIUM" || { echo "install_chromium.sh: $CHROMIUM still missing after install" >&2; exit 1; }
