#!/usr/bin/env bash
# The levin10 table (set12 01-07, all 10 kernels, 7.65/255) for rk-firm-ps2-s10 with PnP-ADMM, shard K of 2.
# usage: tfirm2.sh K FOLDER   (FOLDER: a copy of benchmarks/results/levin10-cal2/set12; merge the shards with
# benchmarks/results/issue15/firm/merge.py)
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
pnp bench deblur --protocol benchmarks/protocols/levin10-cal8.toml --data set12 --max-images 7 --noise 7.65/255 \
  --denoiser rk-firm-ps2-s10 --solver admm --save-images none --shard $1/2 --out $2
