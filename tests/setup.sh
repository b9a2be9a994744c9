#!/usr/bin/env bash
# Installs what the end-to-end tests drive besides the gateway: Python tools
# in a virtualenv (target/py), npm packages in tests/node, the toolchains
# that build JavaScript and Python modules (componentize-js in guest/js,
# componentize-py in the virtualenv), and from Debian
# what the machine lacks of Node.js, Chromium (the portal's browser tests)
# and PostgreSQL (the tests start throwaway servers from its programs).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv target/py
target/py/bin/pip install -q -r tests/requirements.txt -r guest/python/requirements.txt

missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
npm ci --prefix guest/js --no-audit --no-fund --loglevel=error
