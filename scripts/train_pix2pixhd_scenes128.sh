#!/bin/sh
# The run behind the embedded `pix2pixhd-scenes128` (docs/zoo/pix2pixhd-scenes128.md).
# Rerunning resumes exactly from out/train/pix2pixhd-scenes128/state.pt (kept on the machine
# that trains it; sessions resume it). One thread: on a shared 2-core CPU, two torch threads
# were ~6x slower than one (docs/pix2pixhd-training.md).
set -e
cd "$(dirname "$0")/.."
BIN=.venv/bin
[ -f out/data/scenes128/scenes.json ] || \
    $BIN/ganprior data scenes --n 2000 --size 128 --seed 0 --out out/data/scenes128
OMP_NUM_THREADS=1 $BIN/ganprior train pix2pixhd --data out/data/scenes128 --features \
    --ngf 16 --n-downsample 3 --n-blocks 4 --ndf 32 --num-d 2 --nef 8 --n-downsample-e 3 \
    --batch 4 --niter 10 --niter-decay 10 --snap 1 --save-every 50 --seed 0 --device cpu \
    --out out/train/pix2pixhd-scenes128
