#!/usr/bin/env bash
# One call on a lent H200 (the `run` device tool): embedding throughput through the service's
# pipeline (benchmarks/embed_throughput.py) for XrayCLIP-B and XraySigLIP-L on 2048² JPEGs,
# random weights at the real architectures (no weights can be downloaded there). Targets
# (issue 12): >= 1,500 images/s XrayCLIP-B, >= 800 XraySigLIP-L. Writes $OUT/embed_throughput.jsonl.
#
#     bash benchmarks/h200_embed.sh          # on the device, from the repository root
set -euo pipefail
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp}
"$PYTHON" -c "import torch, torchvision; assert torch.cuda.is_available(), 'no CUDA'; print(torch.__version__, torchvision.__version__, torch.cuda.get_device_name(), flush=True)"
nproc
for encoder in xrayclip xraysiglip; do
  timeout 200 "$PYTHON" benchmarks/embed_throughput.py --encoder "$encoder" --random-weights \
      --device cuda --images 2048 --size 2048 --repeats 1 --json | tee -a "$OUT/embed_throughput.jsonl"
done
