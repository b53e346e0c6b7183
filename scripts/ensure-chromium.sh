#!/usr/bin/env bash
# Make sure Debian's chromium exists for the browser tests (tests/browser/, run with Playwright against
# /usr/bin/chromium; Playwright's own browser download is never used). Never fails: without chromium those tests
# skip with a reason, so `make test` still runs everything else.
set -uo pipefail
CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium is missing; installing Debian's chromium package (for tests/browser)"
  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
    [ -x "$CHROMIUM" ] && exit 0
  fi
  echo "installing chromium failed" >&2
fi
cat >&2 <<'MSG'
chromium is not installed at /usr/bin/chromium, so the browser tests (tests/browser/) will be skipped.
To run them: sudo apt-get install chromium (Debian/Ubuntu), then make test.
MSG
exit 0
