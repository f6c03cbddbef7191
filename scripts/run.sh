#!/usr/bin/env bash
# The main job on the embedded default: sets everything up, then runs a prompt file through
# gemini_tasks. With no REDIS_URL it starts a local Redis and workers; with no API keys, the
# Gemini emulator. Usage: bash scripts/run.sh [prompts.jsonl] [gemini-tasks run options]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

prompts=${1:-$ROOT/producer/examples/prompts.jsonl}
shift || true
exec gemini-tasks run "$prompts" "$@"
