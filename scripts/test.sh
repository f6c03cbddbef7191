#!/usr/bin/env bash
# The whole test suite: sets everything up, checks style with ruff, then runs pytest
# (unit tests, then integration tests on real redis-server, emulator and worker processes).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

ruff check .
ruff format --check .
exec python -m pytest "$@"
