#!/usr/bin/env bash
# The plain ps2 fine-tune to 10/255 (train.sh plain) at lr 3e-4 instead of 1e-3, same budget and seed.
# usage: train_lr.sh OUTDIR
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
OUT=$1; mkdir -p "$OUT"
pnp train --sigma 0.0392156862745098 --init rk-averaged-s25 --steps 1000 --batch-size 16 --patch-size 48 \
  --lr 3e-4 --seed 3 --validate-every 500 --checkpoint-every 100 --no-progress --out "$OUT/ps2-plain-lr3e-4-s10.safetensors"
