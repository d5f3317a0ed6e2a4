#!/usr/bin/env bash
cd /work/main; . .venv/bin/activate
export OMP_NUM_THREADS=1
pnp bench calibrate --protocol benchmarks/protocols/levin10-cal6.toml --data train400 --max-images 2 --kernels 0,8,9 \
  --noise 7.65/255 --denoiser rk-firm-s10 --solver admm --factors 1,1.5,2,3 --gamma-factors 0.5,1,2 \
  --name levin10-cal7 --out runs/s16/cal-firm-765.toml
