#!/usr/bin/env bash
# Part 4 of `make bench` (GPU images/s, seconds to 93% Fashion-MNIST and 99.5% MNIST test accuracy) in one go, on a
# machine with a CUDA GPU, its own python3 with torch, and no network: the data travel with the working tree.
#
# Here, once: `make bench-data` copies Fashion-MNIST (and MNIST, where this machine has it) into .data/ (git-ignored,
# about 30 MiB, 41 with MNIST). Then, with the device tool, one call:
#   run(command="bash benchmarks/device_run.sh", carry=[".data"], timeout_s=600)
# The table comes back as $OUT/results-gpu.md (and in the output): paste it into benchmarks/results.md, GPU section.
set -euo pipefail
cd "$(dirname "$0")/.."
test -f .data/fashion-mnist/train-images-idx3-ubyte.gz || { echo "no .data/: run make bench-data, carry .data"; exit 2; }
# The package reads its own version from its metadata: install it, offline, without touching the machine's torch.
python3 -m pip install --quiet --no-deps --no-index --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export RESIDUAL_COURSE_DATA="$PWD/.data" PYTHONUNBUFFERED=1
python3 benchmarks/bench.py --parts 4 --output "${OUT:-benchmarks}/results-gpu.md"
