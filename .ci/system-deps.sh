#!/usr/bin/env bash
# Debian packages the test suite uses. Installs them where apt-get and root are at hand; elsewhere
# says what is missing (the tests that need a package skip without it).
set -euo pipefail
packages=()
command -v unar >/dev/null || packages+=(unar)  # a RAR3/RAR5 backend for rarfile (bsdtar cannot read solid RAR3)
command -v chromium >/dev/null || packages+=(chromium)  # the HTML report test opens it in a real browser
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
else
    echo "system-deps: not root or no apt-get; install ${packages[*]} for the RAR tests" >&2
fi
