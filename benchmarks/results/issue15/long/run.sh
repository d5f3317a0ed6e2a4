#!/usr/bin/env bash
# Long run of the ablation's winner (tied blocks), from the 1,500-step ablation weights.
cd /work/main; . .venv/bin/activate
OUT=benchmarks/results/issue15/long/tied-long.safetensors
RES=""; [ -f "$OUT.state.safetensors" ] && RES="--resume"
OMP_NUM_THREADS=1 pnp train --sigma 0.09803921568627451 --pixel-unshuffle 2 --channels 64 --hidden 64 --depth 12 \
  --alpha-block 0.98 --tied --init runs/issue15/tied.safetensors --steps 7500 --batch-size 16 --patch-size 48 \
  --lr 1e-3 --seed 1 --validate-every 500 --checkpoint-every 100 --no-progress --out $OUT $RES
OMP_NUM_THREADS=1 python -m benchmarks.set12_denoise --denoiser $OUT --levels 15,25,50 --json benchmarks/results/issue15/long/tied-long.set12.json
