#!/usr/bin/env bash
# Equal-budget ablation of the deep averaged family (issue 15): the shipped rk-averaged-s25 recipe
# (64 state / 64 hidden channels, 12 Euler blocks at alpha 0.98, 2x2 space-to-depth, batch 16 of
# 48x48 patches, lr 1e-3 cosine, seed 0, sigma 25/255) for STEPS steps, one change per variant.
# Usage: bash benchmarks/results/issue15/ablation.sh QUEUE STEPS OUTDIR   (QUEUE = 1, 2 or a variant name; one torch
# thread per queue, two queues side by side on two cores)
set -u
Q=$1; STEPS=$2; OUT=$3
mkdir -p "$OUT"
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
BASE="--sigma 0.09803921568627451 --pixel-unshuffle 2 --channels 64 --hidden 64 --depth 12 --alpha-block 0.98 \
  --steps $STEPS --batch-size 16 --patch-size 48 --lr 1e-3 --seed 0 --validate-every 500 --checkpoint-every 100 --no-progress"
TEACHER=benchmarks/results/issue4/rk-ps2-s25-unconstrained.safetensors
declare -A V
V[baseline]=""
V[multiconv]="--factors 2"
V[oddspline]="--activation odd_spline --spline-init clip --no-bias"
V[anchor]="--anchor"
V[tied]="--tied"
V[distill]="--teacher $TEACHER"
V[firm]="--theta 0.5"
case "$Q" in
  1) NAMES="multiconv anchor firm" ;;
  2) NAMES="baseline oddspline tied distill" ;;
  *) NAMES="$Q" ;;   # one variant by name
esac
for n in $NAMES; do
  f="$OUT/$n.safetensors"
  [ -f "$f" ] && continue
  RES=""; [ -f "$f.state.safetensors" ] && RES="--resume"
  echo "== $n $(date -u +%FT%TZ)" >> "$OUT/queue$Q.txt"
  OMP_NUM_THREADS=1 pnp train $BASE ${V[$n]} --out "$f" $RES >> "$OUT/$n.txt" 2>&1
  OMP_NUM_THREADS=1 python -m benchmarks.set12_denoise --denoiser "$f" --levels 15,25,50 --json "$OUT/$n.set12.json" >> "$OUT/$n.txt" 2>&1
  echo "== done $n $(date -u +%FT%TZ)" >> "$OUT/queue$Q.txt"
done
