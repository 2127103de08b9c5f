#!/usr/bin/env bash
# Regenerates models/onnxpb/onnx.pb.go from models/onnxpb/onnx.proto.
# Needs protoc (apt-get install protobuf-compiler) and protoc-gen-go.
set -euo pipefail
cd "$(dirname "$0")/../models/onnxpb"
GOBIN=${GOBIN:-$(mktemp -d)} go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PATH=$GOBIN:$PATH protoc --go_out=. --go_opt=paths=source_relative \
  --go_opt=Monnx.proto=github.com/cl-dev/cl/models/onnxpb onnx.proto
