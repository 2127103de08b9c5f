#!/usr/bin/env bash
# Builds the edge bundle: cl cross-compiled for linux/arm64 (cgo, Debian's aarch64 cross compiler) packed with the
# arm64 ONNX Runtime library of the same npm package the x64 library comes from (onnxruntime-node, pinned by sha256),
# a launcher and a README, into one archive (docs/EDGE.md):
#
#   OUT_DIR/cl-linux-arm64-VERSION.tar.gz          (and .tar.gz.sha256 beside it)
#     cl-linux-arm64-VERSION/cl                    launcher: sets CL_ORT_LIB to lib/ unless already set, runs bin/cl
#     cl-linux-arm64-VERSION/bin/cl                the arm64 executable (needs glibc >= 2.34)
#     cl-linux-arm64-VERSION/lib/libonnxruntime.so.1
#     cl-linux-arm64-VERSION/README.txt, SHA256SUMS
#
# Usage: scripts/bundle-arm64.sh [OUT_DIR]     (OUT_DIR defaults to out/ in the repository; prints the archive path)
# Environment:
#   CL_VERSION          the version in the name and in `cl version` (default: cli.Version in cli/app.go)
#   SOURCE_DATE_EPOCH   file times in the archive (default: the time of the last git commit, else 0)
#   CL_CACHE_DIR        where the arm64 library is cached (as scripts/install-onnxruntime.sh)
# Reproducible: the same tree, Go, cross compiler and SOURCE_DATE_EPOCH give the same archive bytes (-trimpath, -s -w,
# no VCS stamp, sorted tar entries with fixed owner and times, gzip -n). Idempotent: a rerun replaces the archive.
set -euo pipefail
out_dir=${1:-}
[ -z "$out_dir" ] || out_dir=$(realpath -m -- "$out_dir") # relative to the caller's folder
cd "$(dirname "$0")/.."

ort_version=1.24.3
# sha256 of package/bin/napi-v6/linux/arm64/libonnxruntime.so.1 in onnxruntime-node-1.24.3.tgz from npm;
# the same pin is in scripts/install-onnxruntime.sh (scripts/test-arm64-bundle.sh checks that they agree).
ort_sha=33032cb5b91c12edbf028d7c69fa40a31848d66c0095448758af237d5e0b07db
cc=aarch64-linux-gnu-gcc

die() { echo "bundle-arm64: $*" >&2; exit 1; }

out_dir=${out_dir:-$PWD/out}
version=${CL_VERSION:-$(sed -n 's/^var Version = "\(.*\)"$/\1/p' cli/app.go)}
[ -n "$version" ] || die "cannot read the version from cli/app.go (var Version = \"…\"); set CL_VERSION"
[[ "$version" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || die "version \"$version\" is not usable in a file name (letters, digits, . _ + -)"
name=cl-linux-arm64-$version

command -v go >/dev/null || die "go is needed (Go >= 1.26, see README)"
if ! command -v "$cc" >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bundle-arm64: installing Debian's gcc-aarch64-linux-gnu (the arm64 cross compiler for cgo)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu >/dev/null
  else
    die "$cc not found: install the arm64 cross compiler with: sudo apt-get install -y gcc-aarch64-linux-gnu"
  fi
fi

# The arm64 library, cached and verified (a cached file with another sha256 is fetched again).
cache=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cl}
lib_dir=$cache/onnxruntime-$ort_version-linux-arm64
lib=$lib_dir/libonnxruntime.so.1
verify() { [ -f "$1" ] && echo "$ort_sha  $1" | sha256sum --check --status; }
if ! verify "$lib"; then
  command -v npm >/dev/null || die "npm is needed to fetch ONNX Runtime (apt-get install -y npm)"
  mkdir -p "$lib_dir"
  tmp_ort=$(mktemp -d "$lib_dir/.tmp.XXXXXX")
  trap 'rm -rf "$tmp_ort"' EXIT
  echo "bundle-arm64: fetching onnxruntime-node@$ort_version with npm pack (about 86 MB)" >&2
  (cd "$tmp_ort" && npm pack --silent "onnxruntime-node@$ort_version" >/dev/null) ||
    die "npm pack onnxruntime-node@$ort_version failed (no network or registry?)"
  member=package/bin/napi-v6/linux/arm64/libonnxruntime.so.1
  tar -xzf "$tmp_ort/onnxruntime-node-$ort_version.tgz" -C "$tmp_ort" "$member" ||
    die "onnxruntime-node-$ort_version.tgz has no $member"
  verify "$tmp_ort/$member" ||
    die "sha256 mismatch for $member of onnxruntime-node@$ort_version (expected $ort_sha); refusing to bundle it"
  mv -f "$tmp_ort/$member" "$lib"
  rm -rf "$tmp_ort"
  trap - EXIT
fi

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
[[ "$epoch" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH \"$epoch\" is not a whole number of seconds"

mkdir -p "$out_dir"
stage=$(mktemp -d "$out_dir/.bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
mkdir -p "$root/bin" "$root/lib"

echo "bundle-arm64: building cl $version for linux/arm64 with $cc" >&2
CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=$cc \
  go build -trimpath -buildvcs=false -ldflags "-s -w -X github.com/cl-dev/cl/cli.Version=$version" \
  -o "$root/bin/cl" ./cmd/cl || die "go build for linux/arm64 failed (see above)"
cp "$lib" "$root/lib/libonnxruntime.so.1"

cat >"$root/cl" <<'EOF'
#!/bin/sh
# cl launcher: uses the ONNX Runtime library shipped beside it unless CL_ORT_LIB or --ort-lib names another.
# Symlink it onto the PATH (ln -s "$PWD/cl" /usr/local/bin/cl): the link is followed to find bin/ and lib/.
here=$(dirname "$(readlink -f "$0")")
CL_ORT_LIB=${CL_ORT_LIB:-$here/lib/libonnxruntime.so.1}
export CL_ORT_LIB
exec "$here/bin/cl" "$@"
EOF

cat >"$root/README.txt" <<EOF
cl $version for Linux on 64-bit Arm (aarch64): Raspberry Pi 4/5 with a 64-bit OS, NVIDIA Jetson, Arm servers.

Contents
  cl                        launcher: sets CL_ORT_LIB to lib/libonnxruntime.so.1 unless it is set, then runs bin/cl
  bin/cl                    the cl executable (linux/arm64, needs glibc >= 2.34: Raspberry Pi OS bookworm,
                            Debian 12, Ubuntu 22.04 / JetPack 6 or newer)
  lib/libonnxruntime.so.1   ONNX Runtime $ort_version, CPU provider (MIT licence, Microsoft), from the npm package
                            onnxruntime-node@$ort_version, sha256 $ort_sha
  SHA256SUMS                checksums of these files (sha256sum -c SHA256SUMS)

Install
  tar -xzf $name.tar.gz
  ln -s "\$PWD/$name/cl" /usr/local/bin/cl      (or run ./$name/cl)
  cl version

ONNX Runtime library
  cl loads the library named by --ort-lib, else \$CL_ORT_LIB, else
  \${CL_CACHE_DIR:-\${XDG_CACHE_HOME:-\$HOME/.cache}/cl}/onnxruntime-$ort_version/libonnxruntime.so.1.
  The launcher sets CL_ORT_LIB to the bundled library only when it is not already set. Running bin/cl directly:
    CL_ORT_LIB=\$PWD/$name/lib/libonnxruntime.so.1 $name/bin/cl ...
  Jetson GPU: the bundled library is CPU only; for --device cuda pass the Jetson's own GPU build of ONNX Runtime
  ($ort_version or newer, C API 24), e.g. --ort-lib /path/to/libonnxruntime.so (it needs its CUDA libraries).

Example
  cl models cut mobilenetv2-12-int8.onnx --tensor 464_quantized --preprocess imagenet --out mnv2.onnx
  cl extract --model mnv2.onnx --data photos/ --out photos.safetensors
  cl predict --head head.safetensors --features photos.safetensors --top 3

Documentation: docs/EDGE.md and README.md of the cl repository.
EOF
chmod 0755 "$root" "$root/bin" "$root/lib" "$root/cl" "$root/bin/cl"
chmod 0644 "$root/README.txt" "$root/lib/libonnxruntime.so.1"
(cd "$root" && sha256sum bin/cl cl lib/libonnxruntime.so.1 README.txt >SHA256SUMS && chmod 0644 SHA256SUMS)

archive=$out_dir/$name.tar.gz
# GNU tar: sorted names, numeric root owner, one timestamp, no atime/ctime (--format=gnu stores only mtime).
tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$stage" -cf - "$name" | gzip -n -9 >"$stage/archive.tar.gz"
mv -f "$stage/archive.tar.gz" "$archive"
(cd "$out_dir" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256.tmp" && mv -f "$name.tar.gz.sha256.tmp" "$name.tar.gz.sha256")
echo "bundle-arm64: wrote $archive ($(du -h "$archive" | cut -f1), sha256 $(cut -d' ' -f1 "$archive.sha256"))" >&2
echo "$archive"
