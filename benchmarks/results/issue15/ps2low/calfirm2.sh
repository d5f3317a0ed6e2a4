#!/usr/bin/env bash
# The ADMM rule of rk-firm-ps2-s10 around the inherited corner (sigma = nu, gamma = 2/||A||^2): sigma x {0.7071, 1},
# gamma x {1, 2}, on the family's calibration set (train400 test_001/test_002; levin:0, uniform:9, gaussian:25:1.6).
# usage: calfirm2.sh OUT.toml
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
pnp bench calibrate --protocol benchmarks/protocols/levin10-cal8.toml --data train400 --max-images 2 --kernels 0,8,9 \
  --noise 7.65/255 --denoiser rk-firm-ps2-s10 --solver admm --factors 0.7071,1 --gamma-factors 1,2 \
  --name levin10-cal9 --out $1
