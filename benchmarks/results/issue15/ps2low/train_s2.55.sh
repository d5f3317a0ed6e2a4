#!/usr/bin/env bash
# The ps2 design at 2.55/255: the ps2 5/255 member fine-tuned to 2.55/255 (starting from it rescaled, the default),
# the recipe of train_s5.sh (1000 steps, batch 16, patches 48, lr 1e-3, seed 3). Usage: train_s2.55.sh INIT OUTDIR [FLAGS...]
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
INIT=$1; OUT=$2; shift 2; mkdir -p "$OUT"
pnp train --sigma 0.01 --init "$INIT" "$@" --steps 1000 --batch-size 16 --patch-size 48 \
  --lr 1e-3 --seed 3 --validate-every 500 --checkpoint-every 100 --no-progress --out "$OUT/ps2-plain-s2.55.safetensors"
