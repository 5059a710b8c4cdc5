#!/usr/bin/env bash
# The main job on the bundled example: set up and build, compile the example
# GPT-2 with a LoRA spec into a native trainer, train it on the bundled token
# data and show the loss falling.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT=${PEFT_EXAMPLE_DIR:-build/example}
rm -rf "$OUT"
mkdir -p "$OUT"
MODEL=examples/models/gpt2-tiny.onnx
SPEC=examples/specs/gpt2-tiny-lora.yaml
echo "== peftc $MODEL --spec $SPEC -o $OUT/trainer"
build/bin/peftc "$MODEL" --spec "$SPEC" --print-trainable
build/bin/peftc "$MODEL" --spec "$SPEC" -o "$OUT/trainer" --print-memory-plan
echo "== $OUT/trainer --data examples/data/progressions.jsonl --steps 60"
"$OUT/trainer" --data examples/data/progressions.jsonl --steps 60 \
  --out "$OUT/adapter" --log "$OUT/log.jsonl" --log-every 1 --save-every 0
python3 - "$OUT/log.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for r in records:
    if r["step"] == 1 or r["step"] % 10 == 0:
        print(f"step {r['step']:3d}  loss {r['loss']:.4f}  lr {r['lr']:.2e}")
first = sum(r["loss"] for r in records[:5]) / 5
last = sum(r["loss"] for r in records[-5:]) / 5
print(f"mean loss of the first 5 steps {first:.4f} -> last 5 steps {last:.4f}")
sys.exit(0 if last < first else 1)
PY
echo "== the trained adapter (PEFT layout): $OUT/adapter"
ls "$OUT/adapter"
