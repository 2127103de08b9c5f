#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs `go test ./...` and, for a full run, the
# checks CI adds (docs/ARCHITECTURE.md, "Tests and CI"):
#   - the pure-Go packages vetted with CGO_ENABLED=0 (one native boundary: models/ort),
#   - the generated int8 assembly is what heads/internal/kernel/asm_gen.go writes,
#   - the race detector on the concurrent code (extraction pipeline, parallel ranking, the CLI's file locks, the
#     journal), with -run filters that keep it to about two minutes,
#   - the OpenBLAS build (-tags openblas) the README recommends, built and its BLAS users tested,
#   - the arm64 prediction kernels under qemu-aarch64.
# It installs the ONNX Runtime library (scripts/install-onnxruntime.sh, from npm) and, when running as root and
# missing, the Debian packages: dataset-fashion-mnist (real images for the integration tests), python3-numpy (the
# numpy reader tests), qemu-user (arm64 kernels), libopenblas-dev and pkg-config (the openblas build), chromium
# (the web page test; about 3 minutes to install the first time).
# Extra arguments are passed to go test (e.g. scripts/test.sh -run TestCut ./models/); then only those run.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need_apt+=(dataset-fashion-mnist)
/usr/bin/python3 -c 'import numpy' 2>/dev/null || need_apt+=(python3-numpy)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
pkg-config --exists openblas 2>/dev/null || need_apt+=(libopenblas-dev)
command -v chromium >/dev/null || need_apt+=(chromium)   # serve TestWebPage drives the page in headless chromium
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

# The packages that must build without cgo (every package but models/ort and what runs sessions): internal/...
# except the cgo-only helpers listed here.
cgo_only_internal='github.com/cl-dev/cl/internal/testenv/orttest'
pure=(./models ./models/vit ./models/onnxpb ./extract/imageproc/... ./extract/data ./features ./heads/... ./protocol
  ./report ./serve ./tune/grad ./tune/optim)
for p in $(go list ./internal/...); do
  case " $cgo_only_internal " in *" $p "*) ;; *) pure+=("$p") ;; esac
done
CGO_ENABLED=0 go vet "${pure[@]}"
# The whole tree still builds without cgo (models/ort then refuses ONNX Runtime with ErrNoCgo).
CGO_ENABLED=0 go build ./...
CGO_ENABLED=0 go test -count=1 -run '^TestNoCgo$' ./models/ort
# Prediction does not pull in plotting: only package report (and what imports it: cli) may import gonum/plot.
if go list -deps ./heads/... ./protocol ./serve ./learners | grep -q '^gonum.org/v1/plot'; then
  echo "test.sh: heads, protocol, serve or learners imports gonum/plot; tables and plots belong in package report" >&2
  exit 1
fi

go test -timeout 25m "$@"

if [ "$all" = 1 ]; then
  # The generated assembly is up to date (asm_gen.go writes it; a clean clone has no diff).
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    go generate ./heads/internal/kernel
    if ! git diff --exit-code --stat -- heads/internal/kernel; then
      echo "test.sh: heads/internal/kernel's assembly differs from what go generate writes; commit the regenerated files" >&2
      exit 1
    fi
  fi

  # The race detector on the concurrent code, bounded by -run filters.
  go test -race -count=1 -timeout 10m -run 'TestExtract|TestTinyViTGolden' ./extract/
  # heads: RankParallel runs TopK (shared scorer cache, scratch pools) on several goroutines.
  go test -race -count=1 -timeout 10m -run 'Rank|Joint' ./heads/
  # cli: real concurrent cl processes on one head, the lock waiter; the Ctrl-C test is left to the plain run
  # (a race-instrumented RanPAC fit takes minutes).
  go test -race -count=1 -timeout 10m -run 'Concurrent|Lock|Symlink' ./cli/
  go test -race -count=1 -timeout 10m ./internal/filelock ./internal/atomicfile ./internal/journal

  # The OpenBLAS build the README recommends: it builds, and the packages whose results go through the BLAS pass.
  if pkg-config --exists openblas 2>/dev/null; then
    go vet -tags openblas ./cmd/cl ./internal/openblas ./internal/linalg
    go build -tags openblas -o /dev/null ./cmd/cl
    # TestRanPACCollapse asserts how badly PILOT's primal solve fails, which depends on the BLAS's rounding (top-1
    # 0.867 with OpenBLAS against ≤ 0.8 asserted); it runs in the pure-Go build above.
    go test -tags openblas -count=1 -timeout 15m -skip 'TestRanPACCollapse' ./internal/linalg ./internal/openblas ./heads
    # The path the default cl binary takes where the machine has libopenblas: the library and its LAPACK opened at
    # run time (band reductions, banded and dense Choleskys, FeCAM's and LDA's factorisations).
    CL_BLAS=openblas go test -count=1 -timeout 15m ./heads
  elif [ "${CI:-}" = true ]; then
    echo "test.sh: libopenblas-dev (pkg-config openblas) is missing, so the openblas build cannot be tested" >&2
    exit 1
  else
    echo "test.sh: libopenblas-dev not found: the -tags openblas build not tested (apt-get install libopenblas-dev pkg-config)" >&2
  fi
fi

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

# the arm64 edge bundle (scripts/bundle-arm64.sh) under qemu-aarch64 against the amd64 build (docs/EDGE.md)
if [ "$all" = 1 ]; then scripts/test-arm64-bundle.sh; fi
