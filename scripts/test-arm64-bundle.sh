#!/usr/bin/env bash
# CI check of the edge bundle (docs/EDGE.md): builds it with scripts/bundle-arm64.sh, then runs the bundle's arm64
# cl under user-mode QEMU (Debian's qemu-user; the cross toolchain brings the arm64 loader and libc in
# /usr/aarch64-linux-gnu) and compares it with the amd64 build of the same tree:
#   0. the archive: its SHA256SUMS, the pinned library, bin/cl needing glibc <= 2.34, the launcher;
#   1. cl models cut of testdata/mobilenetv2: the cut model must be byte-identical;
#   2. cl extract of the first 20 Fashion-MNIST test images with the cut MobileNetV2 (QEMU's "max" CPU, which has the
#      Armv8.2 dot product of a Raspberry Pi 5 or Jetson Orin), and of the first 4 again on a Cortex-A72 (a
#      Raspberry Pi 4: no dot product, ONNX Runtime's other int8 kernels): max|Δ| <= TOL_MNV2;
#   3. cl extract of the 6 testdata/tinyvit images (a float32 ViT) on both CPUs: max|Δ| <= TOL_TINYVIT;
#   4. cl predict --top 3 with NCM and RanPAC heads fitted on amd64 (100 Fashion-MNIST train images): the
#      prediction CSVs must be identical.
# Tolerances (feature units; docs/EDGE.md has the measurements behind them):
#   TOL_MNV2 = 0.02: one step of the int8 model's output quantisation (scale 0.0191); measured max|Δ| = 0 (the
#     features were bit-identical on 200 images), a step allows one requantisation rounding to land differently.
#   TOL_TINYVIT = 1e-5: float32 kernels of ONNX Runtime differ between x64 and arm64 (summation order, FMA);
#     measured max|Δ| = 8.3e-7 with |features| up to 2.2, so 12x margin.
# Usage: scripts/test-arm64-bundle.sh    (installs qemu-user, gcc-aarch64-linux-gnu, dataset-fashion-mnist as root
# when missing; otherwise skips with a message, or fails when CI=true). Prints the time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."

TOL_MNV2=0.02
TOL_TINYVIT=1e-5
sysroot=/usr/aarch64-linux-gnu
fm=/usr/share/datasets/fashion-mnist

say() { echo "test-arm64-bundle: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

need_apt=()
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null && [ -e "$sysroot/lib/ld-linux-aarch64.so.1" ] || need_apt+=(gcc-aarch64-linux-gnu)
[ -f "$fm/t10k-images-idx3-ubyte.gz" ] && [ -f "$fm/train-images-idx3-ubyte.gz" ] || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  elif [ "${CI:-}" = true ]; then
    fail "missing ${need_apt[*]}: sudo apt-get install -y ${need_apt[*]}"
  else
    say "SKIP: missing ${need_apt[*]}; install them with: sudo apt-get install -y ${need_apt[*]}"
    exit 0
  fi
fi

# The arm64 library is pinned in two scripts; they must agree.
pin_bundle=$(sed -n 's/^ort_sha=\([0-9a-f]\{64\}\)$/\1/p' scripts/bundle-arm64.sh)
pin_install=$(sed -n 's/^ *aarch64|arm64) arch=arm64; sha=\([0-9a-f]\{64\}\) ;;$/\1/p' scripts/install-onnxruntime.sh)
[ -n "$pin_bundle" ] && [ "$pin_bundle" = "$pin_install" ] ||
  fail "the arm64 ONNX Runtime sha256 differs between scripts/bundle-arm64.sh ($pin_bundle) and scripts/install-onnxruntime.sh ($pin_install)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SECONDS=0
step() { say "$1 (${SECONDS}s so far)"; }
# q CMD...: runs CMD with its output kept in a log that is shown only when it fails.
q() { "$@" >"$tmp/q.log" 2>&1 || { cat "$tmp/q.log" >&2; fail "command failed: $*"; }; }

step "building the bundle"
archive=$(scripts/bundle-arm64.sh "$tmp/dist")
tar -xzf "$archive" -C "$tmp"
root=$tmp/$(basename "$archive" .tar.gz)
(cd "$root" && sha256sum --check --quiet SHA256SUMS) || fail "SHA256SUMS of $archive does not match its files"
[ "$(sha256sum <"$root/lib/libonnxruntime.so.1" | cut -d' ' -f1)" = "$pin_bundle" ] || fail "the bundled library is not the pinned one"
# docs/EDGE.md promises glibc 2.34 (Raspberry Pi OS bookworm, Ubuntu 22.04 / JetPack 6): the newest symbol version.
glibc=$(aarch64-linux-gnu-objdump -T "$root/bin/cl" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
[ "$(printf '%s\n2.34\n' "$glibc" | sort -V | tail -1)" = 2.34 ] ||
  fail "bin/cl needs glibc $glibc, newer than the 2.34 docs/EDGE.md states"

# The launcher, with a stand-in for bin/cl that prints what it was given (the real one cannot exec without binfmt).
mkdir -p "$tmp/launch/bin" "$tmp/path"
cp "$root/cl" "$tmp/launch/cl"
printf '#!/bin/sh\necho "$CL_ORT_LIB|$*"\n' >"$tmp/launch/bin/cl"
chmod +x "$tmp/launch/bin/cl"
ln -s "$tmp/launch/cl" "$tmp/path/cl"
got=$(env -u CL_ORT_LIB "$tmp/path/cl" extract --limit 2)
[ "$got" = "$tmp/launch/lib/libonnxruntime.so.1|extract --limit 2" ] || fail "launcher via a symlink gave \"$got\""
got=$(CL_ORT_LIB=/opt/ort/libonnxruntime.so "$tmp/launch/cl" version)
[ "$got" = "/opt/ort/libonnxruntime.so|version" ] || fail "launcher overrode CL_ORT_LIB: \"$got\""

step "building the amd64 cl"
go build -o "$tmp/cl-amd64" ./cmd/cl
go build -o "$tmp/featdiff" ./scripts/featdiff
ort_amd64=$(scripts/install-onnxruntime.sh)
x86() { CL_ORT_LIB=$ort_amd64 "$tmp/cl-amd64" "$@"; }
arm() { # arm CPU cl-args...: the bundle's cl under QEMU, with the bundle's library
  local cpu=$1
  shift
  CL_ORT_LIB=$root/lib/libonnxruntime.so.1 qemu-aarch64 -L "$sysroot" -cpu "$cpu" "$root/bin/cl" "$@"
}
arm max version

step "cl models cut (amd64, arm64)"
cut=(models cut testdata/mobilenetv2/mobilenetv2-12-int8.onnx --tensor 464_quantized --preprocess imagenet)
q x86 "${cut[@]}" --out "$tmp/mnv2-amd64.onnx"
q arm max "${cut[@]}" --out "$tmp/mnv2-arm64.onnx"
cmp "$tmp/mnv2-amd64.onnx" "$tmp/mnv2-arm64.onnx" || fail "cl models cut wrote different bytes on arm64"
model=$tmp/mnv2-amd64.onnx

names=testdata/fashion-mnist-classes.txt
test_data="idx:$fm/t10k-images-idx3-ubyte.gz,$fm/t10k-labels-idx1-ubyte.gz,$names"
train_data="idx:$fm/train-images-idx3-ubyte.gz,$fm/train-labels-idx1-ubyte.gz,$names"
step "cl extract, MobileNetV2 int8, 20 Fashion-MNIST test images (amd64; arm64 max; arm64 cortex-a72, 4 images)"
q x86 extract --model "$model" --data "$test_data" --limit 20 --out "$tmp/test-amd64.safetensors"
q arm max extract --model "$model" --data "$test_data" --limit 20 --out "$tmp/test-arm64.safetensors"
"$tmp/featdiff" --max-abs "$TOL_MNV2" "$tmp/test-amd64.safetensors" "$tmp/test-arm64.safetensors" ||
  fail "MobileNetV2 features on arm64 (qemu -cpu max) differ from amd64 by more than $TOL_MNV2"
q x86 extract --model "$model" --data "$test_data" --limit 4 --out "$tmp/test4-amd64.safetensors"
q arm cortex-a72 extract --model "$model" --data "$test_data" --limit 4 --out "$tmp/test4-a72.safetensors"
"$tmp/featdiff" --max-abs "$TOL_MNV2" "$tmp/test4-amd64.safetensors" "$tmp/test4-a72.safetensors" ||
  fail "MobileNetV2 features on arm64 (qemu -cpu cortex-a72) differ from amd64 by more than $TOL_MNV2"

step "cl extract, tiny float32 ViT, 6 testdata/tinyvit images (amd64; arm64 max and cortex-a72)"
tv_images=(testdata/tinyvit/img_rgb.jpg testdata/tinyvit/img_grey.png testdata/tinyvit/img_palette.gif
  testdata/tinyvit/img_rgba.png testdata/tinyvit/img_bmp.bmp testdata/tinyvit/img_wide.png)
q x86 extract --model testdata/tinyvit/tinyvit.onnx --out "$tmp/tv-amd64.safetensors" "${tv_images[@]}"
for cpu in max cortex-a72; do
  q arm "$cpu" extract --model testdata/tinyvit/tinyvit.onnx --out "$tmp/tv-$cpu.safetensors" "${tv_images[@]}"
  "$tmp/featdiff" --max-abs "$TOL_TINYVIT" "$tmp/tv-amd64.safetensors" "$tmp/tv-$cpu.safetensors" ||
    fail "tiny ViT features on arm64 (qemu -cpu $cpu) differ from amd64 by more than $TOL_TINYVIT"
done

step "cl fit on amd64 (100 train images), cl predict --top 3 (amd64, arm64)"
q x86 extract --model "$model" --data "$train_data" --limit 100 --out "$tmp/train.safetensors"
for method in ncm ranpac; do
  set_m=()
  [ "$method" = ranpac ] && set_m=(--set M=500)
  q x86 fit --method "$method" "${set_m[@]}" --features "$tmp/train.safetensors" --head "$tmp/$method.safetensors"
  q x86 predict --head "$tmp/$method.safetensors" --features "$tmp/test-amd64.safetensors" --top 3 --out "$tmp/$method-amd64.csv"
  q arm max predict --head "$tmp/$method.safetensors" --features "$tmp/test-arm64.safetensors" --top 3 --out "$tmp/$method-arm64.csv"
  cmp "$tmp/$method-amd64.csv" "$tmp/$method-arm64.csv" || {
    diff "$tmp/$method-amd64.csv" "$tmp/$method-arm64.csv" >&2 || true
    fail "cl predict with the $method head gives other classes on arm64"
  }
  say "$method: $(($(wc -l <"$tmp/$method-arm64.csv") - 1)) rows, top-3 predictions identical"
done

say "PASS in ${SECONDS}s ($(du -h "$archive" | cut -f1) bundle $(basename "$archive"))"
