#!/usr/bin/env bash
# Regenerate the Python stubs from the .proto files here (grpcio-tools, from the test extras).
# tests/unit/test_cmp_proto.py fails when the committed stubs differ from a fresh generation.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out="${1:-.}"
"${PYTHON:-.venv/bin/python}" -m grpc_tools.protoc -I . --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" kiln/cmp/proto/plugin.proto kiln/cmp/proto/kiln_repository.proto
rm -f "$out/kiln/cmp/proto/kiln_repository_pb2_grpc.py"  # no service in that file
