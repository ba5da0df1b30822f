#!/usr/bin/env bash
# The GPU check (issue 22): one script for a lent GPU machine, about 10 minutes. It prints
#   1. the environment (torch, CUDA, the card, bf16 support),
#   2. the accelerator tests (tests/test_device.py: tiled prediction on the device equals the CPU's; a short
#      mixed-precision training; the saved model reloads on the device),
#   3. U-Net prediction images/s at 512x512 (bf16 autocast, batches 1..32) next to a bare model(x) in the same run,
#      training images/s, and the peak memory of one 8192x8192 tiled prediction (GPU memory on CUDA).
# `--cpu` runs the same steps on the CPU (a smaller big image), so the script is tested on machines without a GPU.
#
#   here:    make gpu-wheels                 # the wheels the GPU image lacks -> .whl/ (that machine has no network)
#   there:   bash bench/gpu_check.sh         # carry .whl; figures also in $OUT (or gpu_check_out/)
#   no GPU:  make gpu-check-cpu
set -uo pipefail
DEVICE=cuda; BIG=8192; BATCHES="1 8 32"; TRAIN_BATCH=16
while [ $# -gt 0 ]; do
  case $1 in --cpu) DEVICE=cpu; BIG=2048; BATCHES="1 4"; TRAIN_BATCH=2;; *) echo "unknown option: $1 (use --cpu)"; exit 2;; esac; shift
done
OUT=${OUT:-gpu_check_out}; mkdir -p "$OUT"
PY=${PY:-python3}; [ -x .venv/bin/python ] && [ "$PY" = python3 ] && PY=.venv/bin/python
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:${PYTHONPATH:-}
if ! $PY -c 'import fastai, segmentation_models_pytorch, pydantic' 2>/dev/null; then
  [ -d .whl ] || { echo "missing packages and no .whl/ folder: run 'make gpu-wheels' where pip works and carry .whl"; exit 1; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_check_site .whl/*.whl || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/gpu_check_site
fi
fail=0; t0=$(date +%s)
echo "== 1. environment"
$PY - "$DEVICE" <<'PY' || exit 1
import sys, torch
dev = sys.argv[1]
print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}')
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f'{p.name}: {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs, bf16: {torch.cuda.is_bf16_supported()}')
if dev == 'cuda' and not torch.cuda.is_available(): sys.exit('no CUDA device: run with --cpu')
PY
echo "== 2. accelerator tests (ACCORDS_TEST_DEVICE=$DEVICE)"
ACCORDS_TEST_DEVICE=$DEVICE $PY -m pytest tests/test_device.py -q -p no:cacheprovider 2>&1 | tee "$OUT/tests.log" | tail -5
[ "${PIPESTATUS[0]}" = 0 ] || fail=1
echo "== 3. prediction and training throughput, big-image memory"
$PY bench/bench_unet.py --device "$DEVICE" --threads "$(nproc)" --batches $BATCHES --big "$BIG" --train --train-batch "$TRAIN_BATCH" --json "$OUT/bench_unet.json" || fail=1
echo "== done in $(( $(date +%s) - t0 )) s: $([ $fail = 0 ] && echo OK || echo FAILED)"
exit $fail
