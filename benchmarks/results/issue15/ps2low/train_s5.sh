#!/usr/bin/env bash
# The ps2 design at 5/255: a plain 10/255 ps2 network fine-tuned to 5/255 (starting from it rescaled, the default),
# the same recipe (1000 steps, batch 16, patches 48, lr 1e-3, seed 3). Usage: train_s5.sh INIT OUTDIR [FLAGS...]
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
INIT=$1; OUT=$2; shift 2; mkdir -p "$OUT"
pnp train --sigma 0.0196078431372549 --init "$INIT" "$@" --steps 1000 --batch-size 16 --patch-size 48 \
  --lr 1e-3 --seed 3 --validate-every 500 --checkpoint-every 100 --no-progress --out "$OUT/ps2-plain-s5.safetensors"
