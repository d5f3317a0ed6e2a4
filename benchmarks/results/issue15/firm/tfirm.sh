#!/usr/bin/env bash
# usage: tfirm.sh K FOLDER  (shard K of 2)
cd /work/main; . .venv/bin/activate
export OMP_NUM_THREADS=1
pnp bench deblur --protocol benchmarks/protocols/levin10-cal7.toml --data set12 --max-images 7 --noise 7.65/255 \
  --denoiser rk-firm-s10 --solver admm --save-images none --shard $1/2 --out $2
