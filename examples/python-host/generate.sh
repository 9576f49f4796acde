#!/bin/sh
# Regenerates the Python stubs of Herald's RPC contract from
# plugin/proto/herald/v1/herald.proto, with Debian's python3-grpc-tools.
# Run from anywhere; the stubs land beside this script, under herald/v1/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${PYTHON:-/usr/bin/python3}

"$python" -m grpc_tools.protoc \
  -I "$root/plugin/proto" \
  --python_out="$here" \
  --grpc_python_out="$here" \
  "$root/plugin/proto/herald/v1/herald.proto"

# Make herald/ and herald/v1/ importable as regular packages.
touch "$here/herald/__init__.py" "$here/herald/v1/__init__.py"
