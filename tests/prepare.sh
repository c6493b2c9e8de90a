#!/usr/bin/env bash
# Prepares what some tests need beyond the Python environment (README's test command runs this).
# Each part is idempotent and says what it does; a part that cannot run here says why and the
# tests that need it skip with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "prepare: nothing extra to prepare yet"
