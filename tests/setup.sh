#!/usr/bin/env bash
# Installs what the end-to-end tests drive besides the gateway: Python tools
# in a virtualenv (target/py) and npm packages in tests/node, with Node.js
# from Debian when the machine has none.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv target/py
target/py/bin/pip install -q -r tests/requirements.txt

if ! command -v npm >/dev/null 2>&1; then
    apt-get update -q
    apt-get install -y -q nodejs npm
fi
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
