"""Test-wide environment, set before any test asks gemini_tasks for its settings.

The Redis URL, emulator URL and fake keys of the integration tests are chosen here, up
front, and every worker the tests start inherits them. Unit tests never connect to them.
"""

import os

from gemini_tasks.ops.local import free_port

REDIS_PORT = free_port()
EMULATOR_PORT = free_port()

# Fake keys: the emulator knows them; nothing real is ever needed.
FAKE_KEY = "fake-key-alpha-0001"
OTHER_PROJECT_KEY = "fake-key-bravo-0002"

TEST_ENV = {
    "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{EMULATOR_PORT}",
    "GEMINI_API_KEY_1": FAKE_KEY,
    "GEMINI_TASKS_MAX_RETRIES": "4",
    "GEMINI_TASKS_RETRY_BACKOFF": "0.05",
    "GEMINI_TASKS_RETRY_BACKOFF_MAX": "0.5",
    # Long enough that a call the emulator holds on a test's behalf never times out.
    "GEMINI_TASKS_REQUEST_TIMEOUT": "30",
    "GEMINI_TASKS_CONCURRENCY": "50",
    "GEMINI_TASKS_KEY_PREFIX": "gemini_tasks_test",
    # A pending Batch Mode batch is looked at every second at most.
    "GEMINI_TASKS_BATCH_POLL": "1",
}

for name in [n for n in os.environ if n.startswith(("GEMINI_API_KEY", "GEMINI_TASKS_"))]:
    del os.environ[name]
os.environ.update(TEST_ENV)
