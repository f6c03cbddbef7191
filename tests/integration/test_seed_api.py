"""The seed library's README, run as written against gemini_tasks.

Every Python example of `seed_README.md` (a copy of the seed library's README) runs in
order in one namespace, changed only as its users would change it: the import names
`gemini_tasks` instead of `gemini_parallel`, and its file names are real files.
"""

import hashlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).with_name("seed_README.md")
MEDIA_FILES = [
    "file.mp3", "audio1.mp3", "audio2.wav", "audio2.mp3", "video1.mp4", "video.mp4",
    "interview1.mp3", "interview2.mp3", "presentation.mp4", "intro.mp3", "qa_session.mp3",
    "main_presentation.mp4", "supplementary.mp4",
]  # fmt: skip


def python_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [
        block.replace("from gemini_parallel import", "from gemini_tasks import")
        .replace("/path/to/audio/", "")
        .replace("/path/to/", "")
        for block in blocks
    ]


@pytest.fixture
def root_logger():
    """The seed's logging examples reconfigure the root logger: put it back afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_every_seed_readme_example_runs_unchanged(
    cluster, tmp_path, monkeypatch, capsys, root_logger
):
    monkeypatch.chdir(tmp_path)
    for name in MEDIA_FILES:
        (tmp_path / name).write_bytes(hashlib.sha256(name.encode()).digest() * 50)
    namespace: dict = {}
    blocks = python_blocks()
    assert len(blocks) >= 15
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
        if "prompts_data" in block and "process_prompts" not in block:
            # Blocks that only define prompts: process them as the Quick Start does.
            namespace["results"] = namespace["processor"].process_prompts(namespace["prompts_data"])
        if "process_prompts" in block or "prompts_data" in block:
            results = namespace["results"]
            assert len(results) == len(namespace["prompts_data"])
            for (metadata, response, error), data in zip(
                results, namespace["prompts_data"], strict=True
            ):
                assert error is None, (metadata, error)
                assert metadata == data["metadata"]
                assert response.startswith("echo: ")
    out = capsys.readouterr().out
    assert "Task task_1 result: echo: What is the capital of France?" in out
    assert "Success" in out
    summary = namespace["status_summary"]
    assert summary and all(s["status"] == "AVAILABLE" for s in summary.values())


def test_failures_keep_the_seeds_words_and_every_prompt_gets_its_tuple(cluster):
    from gemini_tasks import AdvancedApiKeyManager, GeminiParallelProcessor

    cluster.configure(rules=[{"answer": "503"}])
    processor = GeminiParallelProcessor(AdvancedApiKeyManager(), "gemini-2.0-flash-001")
    results = processor.process_prompts(
        [{"prompt": "a", "metadata": {"task_id": "x"}}, {"metadata": {"task_id": "bad"}}]
    )
    assert [m for m, _, _ in results] == [{"task_id": "x"}, {"task_id": "bad"}]
    assert "persistent" in results[0][2].lower()
    assert "'prompt' is required" in results[1][2]


def test_streaming_processor(cluster):
    from gemini_tasks import AdvancedApiKeyManager, GeminiStreamingProcessor

    streaming = GeminiStreamingProcessor(AdvancedApiKeyManager(), "gemini-2.0-flash-001")
    streaming.start()
    try:
        one = streaming.process_single({"prompt": "stream me", "metadata": {"n": 1}}, timeout=60)
        cluster.configure(latency=0.8)
        late = streaming.process_single({"prompt": "slow", "metadata": {"n": 2}}, timeout=0.3)
    finally:
        streaming.stop()
    assert one == ({"n": 1}, "echo: stream me", None)
    assert late[0] == {"n": 2} and late[1] is None and "timed out after 0.3s" in late[2]


LOCAL_SCRIPT = """
import os
from gemini_tasks import AdvancedApiKeyManager, GeminiParallelProcessor
manager = AdvancedApiKeyManager(["GEMINI_API_KEY_1"])
processor = GeminiParallelProcessor(key_manager=manager, model_name="gemini-2.0-flash-001")
for metadata, response, error in processor.process_prompts(
    [{"prompt": f"local {i}", "metadata": {"i": i}} for i in range(10)]
):
    print(metadata["i"], response, error)
print("REDIS_URL", os.environ["REDIS_URL"])
"""


def test_local_mode_starts_and_stops_everything(emulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-c", LOCAL_SCRIPT], capture_output=True, text=True, timeout=120,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:10] == [f"{i} echo: local {i} None" for i in range(10)]
    port = int(lines[-1].rsplit(":", 2)[-1].split("/")[0])
    import socket

    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the embedded Redis was left running"


TWICE_SCRIPT = """
import os
from gemini_tasks import AdvancedApiKeyManager, GeminiParallelProcessor
from gemini_tasks.seed import shutdown_local_cluster
for round_ in range(2):
    processor = GeminiParallelProcessor(AdvancedApiKeyManager(), "gemini-2.0-flash-001")
    [(metadata, response, error)] = processor.process_prompts([{"prompt": f"round {round_}"}])
    print(response, error, os.environ["REDIS_URL"])
    shutdown_local_cluster()
print("REDIS_URL" in os.environ)
"""


def test_a_process_can_start_a_local_cluster_again(emulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-c", TWICE_SCRIPT], capture_output=True, text=True, timeout=120,
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, second, gone = done.stdout.splitlines()
    assert first.startswith("echo: round 0 None redis://127.0.0.1:")
    assert second.startswith("echo: round 1 None redis://127.0.0.1:")
    assert first.split()[-1] != second.split()[-1]  # a new embedded Redis, not the dead one
    assert gone == "False"


def test_local_mode_without_redis_server_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PATH"] = str(Path(sys.executable).parent)  # a PATH without redis-server
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "x"}\n')
    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "run", str(prompts)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert "redis-server is not installed" in done.stderr
    assert "apt-get install -y redis-server" in done.stderr
    assert "Traceback" not in done.stderr
