#!/usr/bin/env bash
# Runs the whole pytest suite. pytest's exit code 5 ("no tests collected") is a failure here:
# a suite that ran nothing has proved nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
# The browser test (tests/ui/) drives Debian's chromium; install it first when it is missing.
bash scripts/install_chromium.sh || { echo "run_tests.sh: cannot install chromium" >&2; exit 1; }
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run_tests.sh: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
