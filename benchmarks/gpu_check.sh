#!/usr/bin/env bash
# One short call on a machine with an NVIDIA GPU: mibe from source, HF backend, bf16, random 1.1B LLaMA.
# Needs torch and transformers there (no datasets, rouge-score or bert-score: mibe imports them lazily).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import jinja2, yaml, numpy, tqdm, tokenizers" 2>/dev/null || pip install -q jinja2 pyyaml numpy tqdm tokenizers
PYTHONPATH="$PWD" python3 benchmarks/gpu_check.py --size 1b --device cuda --dtype bfloat16 "$@"
