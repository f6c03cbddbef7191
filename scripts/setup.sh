#!/usr/bin/env bash
# Sourced by run.sh and test.sh: installs what gemini_tasks needs on Debian/Ubuntu when it is
# missing (python3 with venv, redis-server), then the project into .venv. Safe to repeat.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${GEMINI_TASKS_VENV:-$ROOT/.venv}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

command -v python3 >/dev/null || apt_install python3
command -v redis-server >/dev/null || apt_install redis-server
# Debian's packaged redis-server starts a system service on 6379; gemini_tasks starts its own.

if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
fi

# Reinstall only when the project's dependencies changed.
stamp="$VENV/.gemini-tasks-installed"
wanted=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]"
  echo "$wanted" >"$stamp"
fi
export PATH="$VENV/bin:$PATH"
