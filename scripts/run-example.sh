#!/usr/bin/env bash
# The main job on the bundled example: set up, build, then compile the example
# model. (Until the trainer lands this shows the imported IR.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL=examples/models/gpt2-tiny.onnx
echo "== peftc $MODEL --emit=mlir --input-shape input_ids=2x16"
build/bin/peftc "$MODEL" --emit=mlir --input-shape input_ids=2x16
