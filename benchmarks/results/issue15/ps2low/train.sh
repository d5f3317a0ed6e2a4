#!/usr/bin/env bash
# The s25 design (64/64 channels at half resolution, 12 Euler blocks) fine-tuned to 10/255, with and without the
# firm relaxation theta = 1/2, same budget, data, patches and seed. Usage: train.sh firm|plain OUTDIR [FLAGS...]
# The first pair of runs predates the rescaled init: reproduce them with FLAGS = --init-as-is.
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
KIND=$1; OUT=$2; shift 2; mkdir -p "$OUT"
EXTRA=""; [ "$KIND" = firm ] && EXTRA="--theta 0.5"
pnp train --sigma 0.0392156862745098 --init rk-averaged-s25 $EXTRA "$@" --steps 1000 --batch-size 16 --patch-size 48 \
  --lr 1e-3 --seed 3 --validate-every 500 --checkpoint-every 100 --no-progress --out "$OUT/ps2-$KIND-s10.safetensors"
