#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs `go test ./...`.
#   - the ONNX Runtime library (scripts/install-onnxruntime.sh, from npm),
#   - Debian packages when running as root and missing: dataset-fashion-mnist (real images for the integration
#     tests), python3-numpy (the Python reader snippet test), qemu-user (the arm64 prediction kernels, run under
#     qemu-aarch64 after the native tests).
# Extra arguments are passed to go test (e.g. scripts/test.sh -run TestCut ./models/); then only those run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need_apt+=(python3-numpy)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
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
all=0
if [ $# -eq 0 ]; then
  set -- ./...
  all=1
fi
go vet ./...
GOARCH=arm64 go vet ./heads/...
go test -timeout 25m "$@"

# arm64: the SDOT int8 kernels (Armv8.2 dot product) and TopK on them, under user-mode QEMU emulating a CPU with
# the extension (-cpu max) and one without it (cortex-a53: the portable path).
if [ "$all" = 1 ]; then
  if command -v qemu-aarch64 >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    GOARCH=arm64 go test -c -o "$tmp/kernel.test" ./heads/internal/kernel
    GOARCH=arm64 go test -c -o "$tmp/heads.test" ./heads
    for cpu in max cortex-a53; do
      echo "arm64 (qemu-aarch64 -cpu $cpu):"
      qemu-aarch64 -cpu "$cpu" "$tmp/kernel.test" -test.count 1
      (cd heads && qemu-aarch64 -cpu "$cpu" "$tmp/heads.test" -test.count 1 -test.run 'TopK|Shortlist|ScoresReference|Relabel')
    done
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: qemu-aarch64 is missing, so the arm64 kernels cannot be tested (apt-get install qemu-user)" >&2
    exit 1
  else
    echo "test.sh: qemu-aarch64 not found: arm64 kernels not tested (apt-get install qemu-user)" >&2
  fi
fi
