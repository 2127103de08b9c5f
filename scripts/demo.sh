#!/usr/bin/env bash
# The main job (README): an offline, end-to-end class-incremental run on real images.
#
#   1. installs the ONNX Runtime library (npm) and, as root, Debian's dataset-fashion-mnist;
#   2. builds cl;
#   3. turns the shipped ImageNet-pretrained MobileNetV2 into a 1280-d feature extractor (cl models cut);
#   4. extracts features of Fashion-MNIST train and test images (cl extract);
#   5. runs the class-incremental benchmark B0 Inc2, seed 1993, for several heads (cl bench) and prints the table.
#
# Environment: DEMO_TRAIN (default 10000) and DEMO_TEST (default 2000) images; DEMO_DIR (default .cache/demo).
set -euo pipefail
cd "$(dirname "$0")/.."

train_n=${DEMO_TRAIN:-10000}
test_n=${DEMO_TEST:-2000}
dir=${DEMO_DIR:-.cache/demo}
fm=/usr/share/datasets/fashion-mnist

if [ ! -f "$fm/train-images-idx3-ubyte.gz" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "demo: installing Debian's dataset-fashion-mnist" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "demo: needs Fashion-MNIST: sudo apt-get install -y dataset-fashion-mnist" >&2
    exit 1
  fi
fi

export CL_ORT_LIB=$(scripts/install-onnxruntime.sh)
mkdir -p "$dir" bin
go build -o bin/cl ./cmd/cl

model=$dir/mobilenetv2-features.onnx
bin/cl models cut testdata/mobilenetv2/mobilenetv2-12-int8.onnx --tensor 464_quantized --preprocess imagenet \
  --backbone "MobileNetV2 1.0 ImageNet-1K int8 (ONNX Model Zoo)" --out "$model"

names=testdata/fashion-mnist-classes.txt
[ -f "$dir/train.safetensors" ] && [ "$(cat "$dir/train.n" 2>/dev/null)" = "$train_n" ] ||
  { bin/cl extract --model "$model" --data "idx:$fm/train-images-idx3-ubyte.gz,$fm/train-labels-idx1-ubyte.gz,$names" \
      --limit "$train_n" --out "$dir/train.safetensors" && echo "$train_n" > "$dir/train.n"; }
[ -f "$dir/test.safetensors" ] && [ "$(cat "$dir/test.n" 2>/dev/null)" = "$test_n" ] ||
  { bin/cl extract --model "$model" --data "idx:$fm/t10k-images-idx3-ubyte.gz,$fm/t10k-labels-idx1-ubyte.gz,$names" \
      --limit "$test_n" --out "$dir/test.safetensors" && echo "$test_n" > "$dir/test.n"; }

echo
echo "Backbone: MobileNetV2 (ImageNet-1K, int8), the real pre-trained model shipped in testdata/mobilenetv2 —"
echo "NOT the ViT-B/16-IN21K of the papers (see README: 'Running the real ViT-B/16-IN21K')."
echo "Data: Fashion-MNIST, $train_n train / $test_n test images, 10 classes; protocol B0 Inc2, seed 1993."
echo
bin/cl bench --train "$dir/train.safetensors" --test "$dir/test.safetensors" \
  --method simplecil,ncm,lda,fecam,ranpac --set M=2000 --init 0 --inc 2 --seed 1993 --out "$dir/bench"
echo
echo "Plot and tables: $dir/bench/"
