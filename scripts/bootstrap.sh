#!/bin/sh
# Create the project's virtualenv. On a fresh Debian the interpreter may come
# without ensurepip (package python3-venv); install it from Debian's archive then.
# The tests also run the openssl command (as a user would check a certificate):
# installed from Debian's archive when missing.
set -eu
VENV="${1:-.venv}"
if ! command -v openssl >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl
fi
if [ -x "$VENV/bin/python" ]; then exit 0; fi
if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        ver="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" || \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
        python3 -m venv "$VENV"
    else
        echo "python3 -m venv failed: install Debian's python3-venv package" >&2
        exit 1
    fi
fi
