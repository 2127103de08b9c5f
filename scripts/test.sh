#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs `go test ./...`.
#   - the ONNX Runtime library (scripts/install-onnxruntime.sh, from npm),
#   - Debian packages when running as root and missing: dataset-fashion-mnist (real images for the integration
#     tests), python3-numpy (the Python reader snippet test).
# Extra arguments are passed to go test (e.g. scripts/test.sh -run TestCut ./models/).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need_apt+=(python3-numpy)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing ${need_apt[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: missing ${need_apt[*]}; install them with: sudo apt-get install -y ${need_apt[*]}" >&2
  fi
fi

CL_ORT_LIB=$(scripts/install-onnxruntime.sh)
export CL_ORT_LIB
if [ $# -eq 0 ]; then
  set -- ./...
fi
go vet ./...
go test -timeout 25m "$@"
