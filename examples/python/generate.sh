#!/usr/bin/env bash
# Generates the Python stubs of proto/cairn into gen/ with grpcio-tools (requirements.txt).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$here/../.."
"$repo/scripts/googleapis"
python="${PYTHON:-python3}"
rm -rf "$here/gen"
mkdir -p "$here/gen"
"$python" -m grpc_tools.protoc -I "$repo/proto" -I "$repo/.cache/googleapis" \
  --python_out="$here/gen" --grpc_python_out="$here/gen" "$repo"/proto/cairn/v1/*.proto
echo "stubs in $here/gen"
