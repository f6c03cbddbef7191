#!/usr/bin/env bash
# The whole test suite: sets everything up, checks style (ruff) and types (mypy), runs the
# unit tests on the checkout, then builds the wheel, installs it into a fresh virtual
# environment outside the checkout, and runs the integration tests against that installed
# package, as users install it: a file missing from the wheel fails here.
#
# With arguments, runs just those pytest arguments on the checkout (a developer's loop):
#   bash scripts/test.sh tests/unit -q
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"

if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi

# The multi-machine test builds its hosts from network and mount namespaces; the monitoring
# tests run a real Prometheus and look at Flower in a real (headless) browser.
command -v ip >/dev/null || apt_install iproute2
command -v unshare >/dev/null || apt_install util-linux
command -v prometheus >/dev/null || apt_install --no-install-recommends prometheus
command -v chromium-headless-shell >/dev/null || apt_install --no-install-recommends chromium-headless-shell

ruff check .
ruff format --check .
mypy
python -m pytest tests/unit

# The installed package, in a place no test's private /tmp hides from a worker.
work=${GEMINI_TASKS_TEST_DIR:-/var/tmp/gemini-tasks-test}
rm -rf "$work"
mkdir -p "$work/dist" "$work/suite"
python -m build --wheel --no-isolation --outdir "$work/dist" "$ROOT" >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$work/dist"/*.whl "pytest>=8" "pytest-timeout>=2.3"
# The tests run from a copy outside the checkout, so `import gemini_tasks` can only find the
# installed package; the repository files some tests read come along.
cp -r tests producer pyproject.toml README.md "$work/suite/"
cd "$work/suite"
export SOURCE_CHECKOUT="$ROOT" PATH="$work/venv/bin:$PATH"
exec "$work/venv/bin/python" -m pytest tests/integration -p no:cacheprovider --durations=10
