#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (CPU, linux x64 or arm64) that cl loads.
#
# The library comes from the npm package onnxruntime-node (a plain `npm install`
# would run a postinstall that downloads CUDA libraries; `npm pack` + tar does not).
# Idempotent: a verified library already in place is kept.
#
# Usage: scripts/install-onnxruntime.sh [DEST_DIR]
#   DEST_DIR defaults to ${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cl}/onnxruntime-1.24.3
# Prints the library path on stdout.
set -euo pipefail

version=1.24.3
case "$(uname -m)" in
  x86_64) arch=x64; sha=92ba8e44d31b80a34f5e805076a044122c3be1fffe0d88ed790de7267b0b2682 ;;
  aarch64|arm64) arch=arm64; sha=33032cb5b91c12edbf028d7c69fa40a31848d66c0095448758af237d5e0b07db ;;
  *) echo "install-onnxruntime: unsupported machine $(uname -m); build ONNX Runtime yourself and pass --ort-lib" >&2; exit 1 ;;
esac

cache=${CL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cl}
dest=${1:-$cache/onnxruntime-$version}
lib=$dest/libonnxruntime.so.1

verify() {
  [ -f "$1" ] || return 1
  [ -z "$sha" ] && return 0
  echo "$sha  $1" | sha256sum --check --status
}

if verify "$lib"; then
  echo "$lib"
  exit 0
fi

command -v npm >/dev/null || { echo "install-onnxruntime: npm is needed (apt-get install -y npm)" >&2; exit 1; }
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "install-onnxruntime: fetching onnxruntime-node@$version with npm pack" >&2
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$tmp/onnxruntime-node-$version.tgz" -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
got="$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
if ! verify "$got"; then
  echo "install-onnxruntime: sha256 mismatch for $got (expected $sha); refusing to install" >&2
  exit 1
fi
mv -f "$got" "$lib"
echo "install-onnxruntime: installed $lib" >&2
echo "$lib"
