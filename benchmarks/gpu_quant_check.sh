#!/usr/bin/env bash
# One short call on a lent GPU machine (it has torch but reaches nothing): install the bitsandbytes
# wheel carried in the git-ignored .whl/ folder, then check --quantize 4bit and 8bit, --device-map
# auto and one QLoRA step on a random ~1B LLaMA (benchmarks/gpu_quant_check.py), printing a summary.
#
# Fetch the wheel beforehand, on a machine that reaches PyPI (manylinux x86_64, CPython 3.12):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_24_x86_64 -d .whl bitsandbytes
# and carry .whl/ with the call. Needs transformers, peft, accelerate and tokenizers there (mibe's own
# dependencies); mibe runs from source.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if ! python3 -c "import bitsandbytes" 2>/dev/null; then
  wheel=$(ls .whl/bitsandbytes-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    echo "gpu_quant_check: no bitsandbytes wheel in .whl/ (see the download command at the top of this script)" >&2
    exit 2
  fi
  python3 -m pip install -q --no-deps --no-index "$wheel"
fi
python3 -c "import jinja2, yaml, numpy, tqdm, tokenizers, peft, accelerate" 2>/dev/null \
  || python3 -m pip install -q --no-index --find-links .whl jinja2 pyyaml numpy tqdm tokenizers peft accelerate
PYTHONPATH="$PWD" python3 benchmarks/gpu_quant_check.py --size 1b --device cuda "$@"
