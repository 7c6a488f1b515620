#!/usr/bin/env bash
# One call on a lent H200 (the `run` device tool): embedding throughput through the service's
# pipeline (benchmarks/embed_throughput.py) for XrayCLIP-B and XraySigLIP-L on 2048² JPEGs, and
# XrayCLIP-B on a mixed batch (a quarter PNGs: nvJPEG takes the JPEGs, the process pool the
# PNGs), random weights at the real architectures (no weights can be downloaded there). Targets
# (issue 12): >= 1,500 images/s XrayCLIP-B, >= 800 XraySigLIP-L. Writes $OUT/embed_throughput.jsonl,
# one JSON object per run (or {"run": ..., "exit": N} for a run that failed or ran out of time).
#
#     bash benchmarks/h200_embed.sh            # on the device, from the repository root (< 9 min)
#     bash benchmarks/h200_embed.sh --dry-run  # anywhere: the same runs on the CPU, tiny sizes,
#                                              # the GPU route with decode_jpeg on the CPU
set -euo pipefail
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp}
if [[ "${1:-}" == "--dry-run" ]]; then
  common=(--device cpu --device-decoder cpu --images 4 --size 256 --batch 2 --repeats 1 --json)
  limit=300
else
  "$PYTHON" -c "import torch, torchvision; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name(), flush=True)"
  common=(--device cuda --images 2048 --size 2048 --repeats 1 --json)
  limit=170
fi
nproc
mkdir -p "$OUT"
run() {  # run NAME ARGS...: one benchmark run; a failure is recorded and the next run goes on
  local name=$1
  shift
  local status=0
  timeout "$limit" "$PYTHON" benchmarks/embed_throughput.py "$@" "${common[@]}" >"$OUT/$name.json" || status=$?
  if [[ $status -eq 0 ]]; then
    tail -n 1 "$OUT/$name.json" | tee -a "$OUT/embed_throughput.jsonl"
  else
    echo "{\"run\": \"$name\", \"exit\": $status}" | tee -a "$OUT/embed_throughput.jsonl"
  fi
}
run xrayclip-jpeg --encoder xrayclip --random-weights
run xraysiglip-jpeg --encoder xraysiglip --random-weights
run xrayclip-mixed --encoder xrayclip --random-weights --png-share 0.25
