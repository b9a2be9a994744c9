#!/usr/bin/env bash
# Builds the gateway's Python modules into components, each with the SDK it
# imports, against the WIT contract: `bash guest/python/build.sh [OUT_DIR]`.
# Each lands as OUT_DIR/fhirgate_<name>_py.wasm; OUT_DIR defaults to the
# workspace's target/guest-py. componentize-py comes from the test venv
# (target/py, made by tests/setup.sh) or else PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$root/target/guest-py}" && cd "${1:-$root/target/guest-py}" && pwd)"
componentize="$root/target/py/bin/componentize-py"
[ -x "$componentize" ] || componentize=componentize-py

# Module directory and the world it is built for; its code is app.py.
for module in router-table:router; do
    name="${module%%:*}" world="${module##*:}"
    file="$out/fhirgate_${name//-/_}_py.wasm"
    "$componentize" -d "$root/wit" -w "$world" componentize app \
        -p "$here/$name" -p "$here/sdk" -o "$file" >/dev/null
    echo "built $file ($(( $(stat -c %s "$file") / 1000000 )) MB)"
done
