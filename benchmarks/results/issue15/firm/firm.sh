#!/usr/bin/env bash
cd /work/main; . .venv/bin/activate
export OMP_NUM_THREADS=1
for LR in 1e-3 3e-4; do
pnp train --sigma 0.0392156862745098 --init rk-averaged-s10 --theta 0.5 --steps 800 --batch-size 16 --patch-size 40 \
  --lr $LR --seed 3 --validate-every 400 --checkpoint-every 100 --no-progress --out benchmarks/results/issue15/firm/firm-lr$LR.safetensors
done
