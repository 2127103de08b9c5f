#!/usr/bin/env bash
# ViT-B/16-size parity and speed check of `cl models import` (docs/VIT.md, docs/PERFORMANCE.md "ViT import").
#
#   scripts/bench-vit.sh [DIR]      (default DIR: ${TMPDIR:-/tmp}/cl-vit-b16)
#
# 1. /usr/bin/python3 models/vit/testdata/make_reference.py --vitb DIR  writes a ViT-B/16 with random weights
#    (timm names, ~343 MB), torch features of 4 images and torch.onnx.export's graph of the same weights.
# 2. go test -run TestViTB16 ./models/vit  imports the checkpoint with the Go builder (fp32 with standard-op
#    attention, fp32 with com.microsoft.MultiHeadAttention, int8), asserts max |Δ| ≤ 1e-4 vs torch and the int8
#    cosine, and prints median latencies on 2 threads for batch 1 and 32, the graphs' runs alternating.
# Needs torch 1.13 + numpy under /usr/bin/python3 and the ONNX Runtime library (scripts/install-onnxruntime.sh).
# About 1 GB of disk in DIR and 4-6 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-${TMPDIR:-/tmp}/cl-vit-b16}
mkdir -p "$DIR"
if [[ ! -f "$DIR/vitb_torch.onnx" ]]; then
  /usr/bin/python3 models/vit/testdata/make_reference.py --vitb "$DIR"
fi
CL_VIT_B16_DIR="$DIR" go test -tags manual -count=1 -run '^TestViTB16$' -v -timeout 20m ./models/vit/
