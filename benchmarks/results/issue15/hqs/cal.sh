#!/usr/bin/env bash
# The new family (ps2 s5/s10 members) at 7.65/255 on the development images (train400 test_001, test_002; kernels
# levin:0, uniform:9, gaussian:25:1.6; 300 iterations): PnP-HQS, scanned in (s, gamma), and the FBS scale re-scanned.
# Usage: cal.sh hqs|fbs OUTDIR
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
KIND=$1; OUT=$2; mkdir -p "$OUT"
if [ "$KIND" = hqs ]; then
  pnp bench calibrate --protocol benchmarks/protocols/levin10-cal8.toml --data train400 --max-images 2 --kernels 0,8,9 \
    --noise 7.65/255 --denoiser rk-averaged --solver hqs --factors 0.5,0.7071,1,1.4142 --gamma-factors 0.5,1,2,4 \
    --name levin10-cal9 --out "$OUT/cal-fam-hqs-765.toml"
else
  pnp bench calibrate --protocol benchmarks/protocols/levin10-cal8.toml --data train400 --max-images 2 --kernels 0,8,9 \
    --noise 7.65/255 --denoiser rk-averaged --solver fbs --factors 0.7071,0.8409,1,1.1892 --gamma-factors 1 \
    --name levin10-cal9 --out "$OUT/cal-fam-fbs-765.toml"
fi
