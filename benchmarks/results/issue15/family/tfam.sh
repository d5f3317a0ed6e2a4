#!/usr/bin/env bash
# The family rk-averaged (ps2 s5/s10 members) in PnP-FBS on levin10-cal8, set12 01-07, all 10 kernels, at
# 7.65/255 (shard A of 2) then 2.55/255 (shard B of 2): usage tfam.sh A B FOLDER, one call per core with
# (A, B) = (0, 1) and (1, 0) for balanced loads. FOLDER: a copy of benchmarks/results/levin10-cal2/set12;
# merged with benchmarks/results/issue15/family/merge.py.
cd "$(dirname "$0")/../../../.."; . .venv/bin/activate
export OMP_NUM_THREADS=1
A=$1; B=$2; OUT=$3
run() {  # NOISE SHARD
  pnp bench deblur --protocol benchmarks/protocols/levin10-cal8.toml --data set12 --max-images 7 --noise "$1" \
    --denoiser rk-averaged --solver fbs --save-images none --shard "$2/2" --out "$OUT"
}
run 7.65/255 "$A"
run 2.55/255 "$B"
