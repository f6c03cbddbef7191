"""Multimodal prompts across processes: the seed's examples, staging, uploads, bad input.

The emulator answers with a description of every part it received, in order (text, and
media by type, mime type and content hash or URI), so each check below is exactly what
reached Gemini.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from gemini_tasks import runtime
from gemini_tasks.errors import JobNotFound
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.refs import MediaRef
from gemini_tasks.ops import local, progress
from gemini_tasks.producer import Job, JobOptions, Mode, submit
from gemini_tasks.records import StagedRecord
from gemini_tasks.worker.caching import job_caches
from gemini_tasks.worker.counting import TokenCounter
from tests.conftest import FAKE_KEY, OTHER_PROJECT_KEY, TEST_ENV

pytestmark = pytest.mark.integration

QUEUE = "media"
URL = "https://e.com/u"
INLINE_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def media_workers(redis_url, emulator_process, tmp_path_factory):
    run_dir: Path = tmp_path_factory.mktemp("media-workers")
    env = {
        **TEST_ENV,
        "GEMINI_API_KEY_1": FAKE_KEY,
        "GEMINI_API_KEY_2": OTHER_PROJECT_KEY,
        "GEMINI_TASKS_PROJECTS": "project-a=GEMINI_API_KEY_1; project-b=GEMINI_API_KEY_2",
        "GEMINI_TASKS_QUEUE": QUEUE,
        "GEMINI_TASKS_INLINE_LIMIT_BYTES": str(INLINE_LIMIT),
        "GEMINI_TASKS_REQUEST_TIMEOUT": "10",
    }
    with local.workers(2, env, concurrency=20, log_dir=run_dir, cwd=run_dir):
        yield run_dir


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    """Small media files with distinct content (only their bytes matter to Gemini here)."""
    names = ["intro.mp3", "qa_session.mp3", "audio1.mp3", "audio2.wav", "interview1.mp3",
             "interview2.mp3", "video1.mp4", "presentation.mp4", "main_presentation.mp4",
             "supplementary.mp4"]  # fmt: skip
    files = {}
    for i, name in enumerate(names):
        path = tmp_path / name
        path.write_bytes(hashlib.sha256(name.encode()).digest() * (64 + i))
        files[name] = path
    return files


def sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def inline(path_or_bytes, mime: str, meta: dict | None = None) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return f"[inline {mime} sha256:{sha16(data)}{_meta(meta)}]"


def url(uri: str, mime: str = "video/mp4", meta: dict | None = None) -> str:
    return f"[file {mime} {uri}{_meta(meta)}]"


def _meta(meta: dict | None) -> str:
    if not meta:
        return ""
    camel = {re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): v for k, v in meta.items()}
    camel = {k: float(v) if k == "fps" else v for k, v in camel.items()}
    return " " + json.dumps(camel, sort_keys=True)


def echo(*parts: str) -> str:
    return "echo: " + " | ".join(parts)


def seed_examples(m: dict[str, Path]) -> list[tuple[dict, str]]:
    """Every example of the seed README's multi-modal section, and what Gemini must get."""
    complex_prompt = """
        I need you to analyze this presentation.

        First, listen to the introduction: <audio>

        Now watch the main content: <video>

        Then listen to the Q&A section: <audio>

        Finally, review this supplementary video: <video>

        Please provide a comprehensive summary covering all aspects.
        """
    texts = [t.strip() for t in re.split(r"<audio>|<video>", complex_prompt)]
    audio2 = m["audio2.wav"].read_bytes()
    return [
        (
            {"prompt": "Transcribe and summarize this audio:", "audio_path": str(m["intro.mp3"]),
             "audio_mime_type": "audio/mp3", "metadata": {"task_id": "audio_task_1"}},
            echo(inline(m["intro.mp3"], "audio/mp3"), "Transcribe and summarize this audio:"),
        ),
        (
            {"prompt": "First, analyze this audio: <audio> Now compare it with this video: "
                       "<video> Finally, what do you think about this second audio: <audio>",
             "audio_path": [str(m["audio1.mp3"]), str(m["audio2.wav"])],
             "video_path": [str(m["video1.mp4"])], "metadata": {"task_id": "multimedia_analysis"}},
            echo("First, analyze this audio:", inline(m["audio1.mp3"], "audio/mp3"),
                 "Now compare it with this video:", inline(m["video1.mp4"], "video/mp4"),
                 "Finally, what do you think about this second audio:",
                 inline(m["audio2.wav"], "audio/wav")),
        ),
        (
            {"prompt": "Compare these recordings: <audio> <audio> with this visual content: "
                       "<video>",
             "audio_path": [str(m["interview1.mp3"]), str(m["interview2.mp3"])],
             "video_path": [str(m["presentation.mp4"])],
             "audio_mime_type": ["audio/mp3", "audio/mp3"], "video_mime_type": ["video/mp4"],
             "metadata": {"task_id": "comparison_task"}},
            echo("Compare these recordings:", inline(m["interview1.mp3"], "audio/mp3"),
                 inline(m["interview2.mp3"], "audio/mp3"), "with this visual content:",
                 inline(m["presentation.mp4"], "video/mp4")),
        ),
        (
            {"prompt": "Analyze this audio file: <audio> and this video: <video> then this audio "
                       "data: <audio>",
             "audio_path": [str(m["audio1.mp3"])], "audio_bytes": [audio2],
             "video_url": ["https://example.com/video.mp4"],
             "audio_mime_type": ["audio/mp3", "audio/wav"], "video_mime_type": ["video/mp4"],
             "metadata": {"task_id": "mixed_input_task"}},
            echo("Analyze this audio file:", inline(m["audio1.mp3"], "audio/mp3"),
                 "and this video:", url("https://example.com/video.mp4"),
                 "then this audio data:", inline(audio2, "audio/wav")),
        ),
        (
            {"prompt": "Analyze this video segment: <video> What are the key points?",
             "video_path": [str(m["video1.mp4"])],
             "video_metadata": [{"start_offset": "1250s", "end_offset": "1570s", "fps": 5}],
             "metadata": {"task_id": "video_segment_analysis"}},
            echo("Analyze this video segment:",
                 inline(m["video1.mp4"], "video/mp4",
                        {"start_offset": "1250s", "end_offset": "1570s", "fps": 5}),
                 "What are the key points?"),
        ),
        (
            {"prompt": "Compare these two video clips: <video> <video>",
             "video_url": ["https://example.com/video1.mp4", "https://example.com/video2.mp4"],
             "video_metadata": [{"fps": 10}, {"start_offset": "30s", "end_offset": "60s"}],
             "metadata": {"task_id": "video_comparison"}},
            echo("Compare these two video clips:",
                 url("https://example.com/video1.mp4", meta={"fps": 10}),
                 url("https://example.com/video2.mp4",
                     meta={"start_offset": "30s", "end_offset": "60s"})),
        ),
        (
            {"prompt": complex_prompt,
             "audio_path": [str(m["intro.mp3"]), str(m["qa_session.mp3"])],
             "video_path": [str(m["main_presentation.mp4"]), str(m["supplementary.mp4"])],
             "audio_mime_type": ["audio/mp3", "audio/mp3"],
             "video_mime_type": ["video/mp4", "video/mp4"],
             "video_metadata": [{"fps": 5}, {"start_offset": "0s", "end_offset": "300s"}],
             "metadata": {"task_id": "comprehensive_analysis"}},
            echo(texts[0], inline(m["intro.mp3"], "audio/mp3"),
                 texts[1], inline(m["main_presentation.mp4"], "video/mp4", {"fps": 5}),
                 texts[2], inline(m["qa_session.mp3"], "audio/mp3"),
                 texts[3], inline(m["supplementary.mp4"], "video/mp4",
                                  {"start_offset": "0s", "end_offset": "300s"}),
                 texts[4]),
        ),
        (
            {"prompt": "Analyze the provided media files.",
             "audio_path": [str(m["audio1.mp3"]), str(m["audio2.wav"])],
             "video_path": [str(m["video1.mp4"])], "metadata": {"task_id": "fallback_example"}},
            echo(inline(m["video1.mp4"], "video/mp4"), inline(m["audio1.mp3"], "audio/mp3"),
                 inline(m["audio2.wav"], "audio/wav"), "Analyze the provided media files."),
        ),
    ]  # fmt: skip


def test_every_seed_example_reaches_gemini_part_by_part(media_workers, emulator, media):
    examples = seed_examples(media)
    results = list(submit([record for record, _ in examples], queue=QUEUE).results(timeout=60))

    for (record, expected), result in zip(examples, results, strict=True):
        assert result.error is None, (record["metadata"], result.error)
        assert result.response == expected, record["metadata"]
        assert result.metadata == record["metadata"]


def as_json_line(record: dict) -> str:
    def encode(value):
        if isinstance(value, bytes):
            return {"base64": base64.b64encode(value).decode()}
        if isinstance(value, list):
            return [encode(v) for v in value]
        return value

    return json.dumps({k: encode(v) for k, v in record.items()})


def test_every_seed_example_in_jsonl_through_the_cli(media_workers, emulator, media, tmp_path):
    examples = seed_examples(media)
    prompts = tmp_path / "seed.jsonl"
    prompts.write_text("".join(as_json_line(record) + "\n" for record, _ in examples))
    out = tmp_path / "results.jsonl"

    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "run", str(prompts), "-o", str(out),
         "--queue", QUEUE, "--timeout", "60"],
        capture_output=True, text=True, timeout=120, env=os.environ,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["response"] for line in lines] == [expected for _, expected in examples]


def test_no_media_bytes_in_task_arguments(media_workers, emulator, media):
    big = media["video1.mp4"].read_bytes()
    job = submit([{"prompt": "<video>", "video_bytes": big}], queue=QUEUE)
    [result] = job.results(timeout=60)
    assert result.ok
    inspect = runtime.current().app.backend.get_task_meta(job.task_id(0))
    assert inspect["status"] == "SUCCESS"
    # What travelled as the task argument: a reference, never the content.
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for name in client.scan_iter(match="*unacked*"):
        assert big not in (client.dump(name) or b"")
    assert big.hex() not in json.dumps(result.to_json())


def test_a_file_deleted_after_submit_still_runs(media_workers, emulator, tmp_path):
    path = tmp_path / "ephemeral.mp3"
    path.write_bytes(b"ephemeral audio " * 100)
    content = path.read_bytes()
    job = submit([{"prompt": "Transcribe: <audio>", "audio_path": str(path)}], queue=QUEUE)
    path.unlink()
    [result] = job.results(timeout=60)
    assert result.response == echo("Transcribe:", inline(content, "audio/mp3"))


def test_one_large_video_is_uploaded_once_per_project(media_workers, emulator, tmp_path):
    video = tmp_path / "lecture.mp4"
    video.write_bytes(os.urandom(INLINE_LIMIT * 3))
    records = [{"prompt": f"Summarise part {i}: <video>", "video_path": str(video)}
               for i in range(50)]  # fmt: skip
    job = submit(records, queue=QUEUE)
    results = list(job.results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    digest = sha16(video.read_bytes())
    assert all(f"[file video/mp4 sha256:{digest}]" in r.response for r in results)
    stats = emulator.stats()
    assert stats["uploads"] == {"project-a": 1, "project-b": 1}
    assert {r.key_id for r in results} == {
        k for k in stats["by_key"] if stats["by_key"][k].get("ok")
    }

    # Gemini forgets the files (48 hours pass): each project uploads once more, and goes on.
    emulator.expire_files()
    again = list(submit(records[:10], queue=QUEUE).results(timeout=120))
    assert all(r.ok for r in again), [r.error for r in again if not r.ok]
    stats = emulator.stats()
    assert stats["by_outcome"].get("403", 0) >= 1
    assert sum(stats["uploads"].values()) >= 3


def test_forget_deletes_staged_media_and_uploaded_files(media_workers, emulator, tmp_path):
    video = tmp_path / "talk.mp4"
    video.write_bytes(os.urandom(INLINE_LIMIT * 2))
    sha = hashlib.sha256(video.read_bytes()).hexdigest()
    records = [{"prompt": f"Part {i}: <video>", "video_path": str(video)} for i in range(6)]
    first = submit(records, queue=QUEUE)
    second = submit(records[:2], queue=QUEUE)
    assert all(r.ok for r in [*first.results(timeout=120), *second.results(timeout=120)])
    state = redis.Redis.from_url(os.environ["REDIS_URL"])
    staged = Keyspace(TEST_ENV["GEMINI_TASKS_KEY_PREFIX"]).blob(sha)
    assert state.exists(staged) and emulator.stats()["files"] >= 1

    Job.restore(first.id).forget()
    assert state.exists(staged), "the second job still uses the video"
    done = subprocess.run(
        [sys.executable, "-m", "gemini_tasks", "forget", second.id],
        capture_output=True, text=True, timeout=60, env=os.environ,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert not state.exists(staged)
    assert not list(state.scan_iter(match=f"*:upload:*:{sha}"))
    deadline = time.monotonic() + 20
    while emulator.stats()["files"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert emulator.stats()["files"] == 0, "the workers delete the uploaded files"
    with pytest.raises(JobNotFound):
        Job.restore(first.id)


def test_bad_media_input_fails_alone_with_a_clear_error(media_workers, emulator, tmp_path, media):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    records = [
        {"prompt": "ok <audio>", "audio_path": str(media["audio1.mp3"])},
        {"prompt": "<audio>", "audio_path": str(tmp_path / "missing.mp3")},
        {"prompt": "<video>", "video_path": [str(media["video1.mp4"])],
         "video_mime_type": ["video/mp4", "video/mp4"]},
        {"prompt": "<video>", "video_url": [URL], "video_metadata": [{"fps": 1}, {"fps": 2}]},
        {"prompt": "<video>", "video_url": [URL], "video_metadata": [{"end_offset": "1 min"}]},
        {"prompt": "<audio>", "audio_bytes": ["not bytes"]},
        {"prompt": "<audio>", "audio_bytes": {"base64": "!!!"}},
        {"prompt": "<image>", "image_path": "cat.png"},
        {"prompt": "<audio>", "audio_path": str(empty)},
        {"prompt": "fine too"},
    ]  # fmt: skip
    results = list(submit(records, queue=QUEUE).results(timeout=60))

    assert [r.ok for r in results] == [True] + [False] * 8 + [True]
    expected = [
        "audio_path[0]: cannot read", "video_mime_type has 2 entries",
        "video_metadata has 2 entries", "video_metadata[0].end_offset",
        "audio_bytes[0] must be bytes", "audio_bytes[0] is not valid base64",
        "unknown field(s) 'image_path'", "is empty",
    ]  # fmt: skip
    for result, words in zip(results[1:9], expected, strict=True):
        assert result.error_kind == "invalid_prompt"
        assert words in result.error, result.error


def test_the_emulator_refuses_a_request_over_the_inline_limit(emulator):
    from google import genai
    from google.genai import errors, types

    emulator.configure(request_limit_bytes=100_000)
    client = genai.Client(api_key=FAKE_KEY, http_options=types.HttpOptions(base_url=emulator.url))
    part = types.Part(inline_data=types.Blob(data=os.urandom(150_000), mime_type="video/mp4"))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents=[part])
    assert info.value.code == 400
    assert "Request payload size exceeds the limit: 100000 bytes." in info.value.message


def test_the_emulator_refuses_an_upload_over_the_files_api_limit_of_2_gb(emulator, tmp_path):
    from google import genai
    from google.genai import errors, types

    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as file:  # sparse: nothing but its size is sent before the refusal
        file.truncate(2 * 1024**3 + 1)
    client = genai.Client(api_key=FAKE_KEY, http_options=types.HttpOptions(base_url=emulator.url))
    with pytest.raises(errors.ClientError) as info:
        client.files.upload(file=huge, config=types.UploadFileConfig(mime_type="video/mp4"))
    assert info.value.code == 400
    assert f"maximum allowed size of {2 * 1024**3} bytes" in info.value.message
    assert emulator.stats()["uploads"] == {}


def test_media_gemini_cannot_process_fails_its_prompt_once_and_the_rest_go_on(
    media_workers, emulator, tmp_path
):
    # A file Gemini's processing ends FAILED (a corrupt or unsupported video) fails the same
    # way on every upload: the prompt's invalid_request, not retries.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"EMULATED-MEDIA state=FAILED\n" + os.urandom(INLINE_LIMIT * 2))
    fine = tmp_path / "fine.mp4"
    fine.write_bytes(os.urandom(INLINE_LIMIT * 2))
    records = [{"prompt": "broken <video>", "video_path": str(broken)},
               {"prompt": "fine <video>", "video_path": str(fine)}]  # fmt: skip
    broken_result, fine_result = submit(records, queue=QUEUE).results(timeout=120)

    assert broken_result.error_kind == "invalid_request" and broken_result.attempts == 1
    assert "could not process the uploaded media" in broken_result.error
    assert fine_result.ok, fine_result.error


def test_a_project_whose_file_storage_is_full_frees_what_no_job_needs(
    media_workers, emulator, tmp_path
):
    # Room for about one upload per project: the second video's upload is refused with
    # Gemini's FileStorageBytesPerProject 429 until the first one's file is deleted.
    emulator.configure(storage_bytes=INLINE_LIMIT * 5)
    first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
    for path in (first, second):
        path.write_bytes(os.urandom(INLINE_LIMIT * 3))
    done = list(submit([{"prompt": "one <video>", "video_path": str(first)}] * 4,
                       queue=QUEUE).results(timeout=120))  # fmt: skip
    assert all(r.ok for r in done), [r.error for r in done]

    later = list(submit([{"prompt": "two <video>", "video_path": str(second)}] * 4,
                        queue=QUEUE).results(timeout=120))  # fmt: skip
    assert all(r.ok for r in later), [r.error for r in later]
    assert all(f"sha256:{sha16(second.read_bytes())}" in r.response for r in later)


def test_each_media_file_is_counted_by_gemini_once_for_the_cluster(
    media_workers, emulator, tmp_path
):
    # TPM pacing needs a prompt's tokens before its call: a 10-minute video of a few bytes
    # (the emulator counts media by the duration a test file declares, as Gemini counts by
    # length) is far more than its size suggests, so Gemini's count of it is asked once and
    # shared, and every later prompt is paced by it.
    lengths = {"long.mp4": 600, "short.mp3": 30}
    paths = {}
    for name, seconds in lengths.items():
        paths[name] = tmp_path / name
        paths[name].write_bytes(f"EMULATED-MEDIA seconds={seconds}\n".encode() + os.urandom(500))
    records = [{"prompt": f"Describe {i}: <video>", "video_path": str(paths["long.mp4"])}
               for i in range(12)]  # fmt: skip
    records += [{"prompt": f"Transcribe {i}: <audio>", "audio_path": str(paths["short.mp3"])}
                for i in range(12)]  # fmt: skip
    results = list(submit(records, queue=QUEUE).results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert emulator.stats()["by_outcome"].get("count") == 2  # one countTokens per file
    video, audio = 600 * 263, 30 * 32
    assert all(r.usage["prompt_token_count"] > video for r in results[:12])
    # What every worker now paces these files by: Gemini's count, not a size estimate.
    counter = TokenCounter(
        redis.Redis.from_url(os.environ["REDIS_URL"]),
        Keyspace(TEST_ENV["GEMINI_TASKS_KEY_PREFIX"]),
        ttl=60,
    )
    for name, kind, mime, count in (("long.mp4", "video", "video/mp4", video),
                                    ("short.mp3", "audio", "audio/mpeg", audio)):  # fmt: skip
        data = paths[name].read_bytes()
        ref = MediaRef(kind, mime, len(data), hashlib.sha256(data).hexdigest())
        record = StagedRecord(prompt="x <video>", media=(ref,))
        known = counter.media(record)
        assert known.counts == [count] and not known.mine  # nothing left to count
        assert counter.estimate("gemini-2.5-flash", record, known) > count


def _lecture(tmp_path: Path, seconds: int = 60) -> Path:
    video = tmp_path / "lecture.mp4"
    video.write_bytes(f"EMULATED-MEDIA seconds={seconds}\n".encode() + os.urandom(INLINE_LIMIT))
    return video


def _questions(video: Path, n: int, tag: str = "Question") -> list[dict]:
    return [{"prompt": f"<video> {tag} {i}?", "video_path": str(video),
             "system_instruction": "You are a patient lecturer."} for i in range(n)]  # fmt: skip


def test_a_cached_prefix_job_names_one_cache_per_project_and_deletes_it_at_the_end(
    media_workers, emulator, tmp_path
):
    records = _questions(_lecture(tmp_path), 30)
    job = submit(records, options=JobOptions(queue=QUEUE, cache=True))
    results = list(job.results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert all(f"Question {r.index}?" in r.response for r in results)
    assert all(r.usage["cached_content_token_count"] > 1024 for r in results)
    stats = emulator.stats(calls=True)
    projects = {c["project"] for c in stats["calls"] if c["outcome"] == "ok"}
    assert stats["by_outcome"]["cache_create"] == len(projects)  # one per project used
    assert all(c["cached_content"] for c in stats["calls"] if c["outcome"] == "ok")
    assert sum(stats["cache_uses"].values()) == 30
    counts = job.status().counts
    assert counts.cached_tokens == sum(r.usage["cached_content_token_count"] for r in results)
    assert "context caches created" in progress.summary(job)
    # The job ended: a worker holding a key of each project deletes its cache there.
    emulator.wait_until(lambda s: s["caches"] == {}, "the job's caches deleted")


def test_a_cached_prefix_batch_job_names_the_cache_in_every_request(
    media_workers, emulator, tmp_path
):
    records = _questions(_lecture(tmp_path), 12)
    job = submit(records, options=JobOptions(queue=QUEUE, cache=True, mode=Mode.BATCH))
    results = list(job.results(timeout=120))

    assert all(r.ok and r.mode == "batch" for r in results), [r.error for r in results]
    assert all(f"Question {r.index}?" in r.response for r in results)
    assert all(r.usage["cached_content_token_count"] > 1024 for r in results)
    stats = emulator.stats()
    assert stats["by_outcome"]["batch_create"] == 1 and stats["by_outcome"]["cache_create"] == 1
    assert sum(stats["cache_uses"].values()) == 12  # every request of the batch named it
    counts = job.status().counts
    assert counts.online_cost > 2 * counts.cost  # half price, and the prefix at the cached price
    emulator.wait_until(lambda s: s["caches"] == {}, "the job's cache deleted")
    # Its storage, billed by the hour it was kept, is part of what the job cost.
    kept = job_caches(job.rt.redis, job.rt.keys, job.id, job.rt.settings.prices).storage
    assert kept > 0 and "of it cache storage" in progress.summary(job)


def test_a_cache_gone_before_its_batch_is_answered_is_made_again_for_the_next_batch(
    media_workers, emulator, tmp_path
):
    emulator.configure(batch_seconds=3600)  # the batch waits until the test lets it finish
    records = _questions(_lecture(tmp_path), 6)
    job = submit(records, options=JobOptions(queue=QUEUE, cache=True, mode=Mode.BATCH))
    emulator.wait_until(lambda s: s["by_outcome"].get("batch_create") == 1, "batch created")
    assert emulator.expire_caches() == 1  # Gemini drops the cache while the batch waits
    emulator.configure(batch_seconds=1.0)
    assert emulator.finish_batches() == 1
    results = list(job.results(timeout=120))

    assert all(r.ok and r.mode == "batch" for r in results), [r.error for r in results]
    assert all(r.usage["cached_content_token_count"] > 1024 for r in results)
    stats = emulator.stats()
    # The first batch's 6 requests were refused for the lost cache, a worker asked Gemini
    # for it once (it had gone), and the second batch named a new one.
    assert stats["by_outcome"]["cache_missing"] == 7
    assert stats["by_outcome"]["batch_create"] == 2 and stats["by_outcome"]["cache_create"] == 2


def test_a_prefix_too_small_to_cache_is_sent_uncached_and_the_summary_says_so(
    media_workers, emulator
):
    records = [{"prompt": f"Question {i}?", "system_instruction": "Be brief."} for i in range(6)]
    job = submit(records, options=JobOptions(queue=QUEUE, cache=True))
    results = list(job.results(timeout=60))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stats = emulator.stats()
    assert stats["by_outcome"].get("cache_create", 0) == 0 and stats["caches"] == {}
    assert 1 <= stats["by_outcome"]["cache_too_small"] <= 2  # once per project at most
    assert "under the model's minimum of 1024" in progress.summary(job)


def test_a_cache_that_expires_mid_job_is_made_again_and_every_prompt_answered(
    media_workers, emulator, tmp_path
):
    records = _questions(_lecture(tmp_path), 10)
    records[4]["prompt"] = "<video> hold me here?"
    emulator.configure(rules=[{"answer": "hold", "contains": "hold me"}])
    options = JobOptions(queue=QUEUE, cache=True, max_concurrency=1)  # one prompt at a time
    job = submit(records, options=options)
    emulator.wait_until(lambda s: s["held"] == 1, "the fifth prompt's call held")
    assert emulator.expire_caches() >= 1  # Gemini drops the cache while the job runs
    emulator.configure(rules=[])
    emulator.release()
    results = list(job.results(timeout=120))

    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    stats = emulator.stats()
    assert stats["by_outcome"]["cache_missing"] >= 1  # the next call named the lost cache
    assert stats["by_outcome"]["cache_create"] >= 2  # and it was made again
    assert all(r.usage.get("cached_content_token_count") for r in results)
