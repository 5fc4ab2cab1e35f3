#!/usr/bin/env bash
# `make device-proof` on a machine with a CUDA GPU, its own python3 with torch, and no network (the device tool's).
#
# Here, once: `make bench-data` (Fashion-MNIST into .data/) and `make device-wheels` (the course's Python packages
# that such a machine lacks, as wheels for its Python 3.12, into .whl/). Then, with the device tool, one call:
#   run(command="bash benchmarks/device_proof.sh", carry=[".data", ".whl"], timeout_s=600)
# It prints every figure; $OUT/results-device-proof.md holds part 3's table for benchmarks/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
test -f .data/fashion-mnist/train-images-idx3-ubyte.gz || { echo "no .data/: run make bench-data, carry .data"; exit 2; }
test -d .whl || { echo "no .whl/: run make device-wheels, carry .whl"; exit 2; }
# A venv over the machine's own torch, with the carried wheels and the course, offline; nbgrader is then found
# beside its python, as the grading driver expects.
python3 -m venv --system-site-packages /tmp/proof-venv
/tmp/proof-venv/bin/python -m pip install --quiet --no-index --no-deps --no-compile .whl/*.whl
/tmp/proof-venv/bin/python -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export RESIDUAL_COURSE_DATA="$PWD/.data" PYTHONUNBUFFERED=1 PATH="/tmp/proof-venv/bin:$PATH"
/tmp/proof-venv/bin/python benchmarks/device_proof.py --output "${OUT:-benchmarks}/results-device-proof.md"
