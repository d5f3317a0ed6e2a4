#!/usr/bin/env bash
cd /work/main; . .venv/bin/activate
export OMP_NUM_THREADS=1
pnp bench deblur --protocol benchmarks/protocols/levin10-cal6.toml --data set12 --max-images 7 --noise 12.75/255 \
  --denoiser crr-circular --solver variational --save-images none --out runs/t1275   # runs/t1275: a copy of benchmarks/results/levin10-cal2/set12, copied back after the run
