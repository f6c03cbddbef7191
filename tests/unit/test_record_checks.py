"""A prompt record is data: the checks that keep it from steering a worker, unit by unit."""

import json
import math
from pathlib import Path

import pytest

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.refs import MediaRef
from gemini_tasks.media.store import DirectoryMediaStore, RedisMediaStore
from gemini_tasks.ops.prompt_files import read_records
from gemini_tasks.records import GENERATION_FIELDS, parse_record, parse_staged
from gemini_tasks.result import Result
from gemini_tasks.settings import load

SHA = "a" * 64


@pytest.mark.parametrize(
    "name",
    ["http_options", "httpOptions", "HTTP_OPTIONS", "HttpOptions", "http_Options", "base_url",
     "baseUrl", "headers", "api_version", "apiVersion", "timeout", "client_args",
     "should_return_http_response", "automatic_function_calling", "cached_content",
     "service_tier", "system_instruction", "routing_config", "audio_timestamp"],
)  # fmt: skip
def test_only_fields_that_shape_generation_are_accepted(name):
    record = {"prompt": "x", "generation_config": {name: {"base_url": "http://evil.example/"}}}
    with pytest.raises(InvalidPrompt, match=f"'generation_config.{name}' is not allowed"):
        parse_record(record)
    with pytest.raises(InvalidPrompt, match="is not allowed"):
        parse_staged(record)  # the worker checks again


@pytest.mark.parametrize("spelling", ["max_output_tokens", "maxOutputTokens", "MAX_OUTPUT_TOKENS"])
def test_allowed_fields_are_matched_however_spelled(spelling):
    record = parse_record({"prompt": "x", "generation_config": {spelling: 5}})
    assert record.generation_config == {"max_output_tokens": 5}


def test_the_allow_list_names_real_config_fields():
    from google.genai import types

    assert set(GENERATION_FIELDS) <= set(types.GenerateContentConfig.model_fields)
    assert "http_options" not in GENERATION_FIELDS


@pytest.mark.parametrize(
    ("media", "problem"),
    [
        ({"kind": "audio", "mime_type": "text/plain", "size": 10, "sha256": SHA}, "mime_type"),
        ({"kind": "audio", "mime_type": "audio/mp3", "size": 10, "sha256": "/proc/self/environ"},
         "sha256 must be 64 hexadecimal digits"),
        ({"kind": "audio", "mime_type": "audio/mp3", "size": 10, "sha256": "../" * 21 + "x"},
         "sha256 must be 64 hexadecimal digits"),
        ({"kind": "audio", "mime_type": "audio/mp3", "size": "10", "sha256": SHA}, "size"),
        ({"kind": "audio", "mime_type": "audio/mp3", "size": True, "sha256": SHA}, "size"),
        ({"kind": "audio", "mime_type": "audio/mp3", "size": 3 * 1024**3, "sha256": SHA}, "size"),
        ({"kind": "image", "mime_type": "image/png", "size": 1, "sha256": SHA}, "kind"),
        ({"kind": "video", "mime_type": "video/mp4", "uri": "file:///etc/passwd"}, "https://"),
        ({"kind": "video", "mime_type": "video/mp4", "size": 1, "sha256": SHA, "uri": "https://e"},
         "exactly one"),
        ({"kind": "video", "mime_type": "video/mp4", "size": 1, "sha256": SHA, "path": "/etc"},
         "not a staged media reference"),
    ],
)  # fmt: skip
def test_a_worker_accepts_only_well_formed_media_references(media, problem):
    with pytest.raises(InvalidPrompt, match=problem):
        parse_staged({"prompt": "<audio>", "media": [media]})


def test_users_cannot_supply_staged_media_references():
    media = {"kind": "audio", "mime_type": "audio/mp3", "size": 10, "sha256": SHA}
    with pytest.raises(InvalidPrompt, match="unknown field"):
        parse_record({"prompt": "x", "media": [media]})


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "javascript:alert(1)", "http://169.254.169.254/latest/",
            "ftp://host/x.mp4", "https://e.com/a b.mp4", "HTTPS://e.com"]
)  # fmt: skip
def test_video_url_is_https_only(url):
    with pytest.raises(InvalidPrompt, match="https:// URL"):
        parse_record({"prompt": "x", "video_url": url})


@pytest.mark.parametrize("fps", [math.nan, math.inf, -1, 0, "5", True])
def test_video_metadata_numbers_must_be_finite_and_positive(fps):
    with pytest.raises(InvalidPrompt, match="fps"):
        parse_record(
            {"prompt": "x", "video_url": "https://e.com/v", "video_metadata": {"fps": fps}}
        )


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"prompt": "x", "metadata": {"score": math.nan}}, "NaN or Infinity"),
        ({"prompt": "x", "metadata": {"score": -math.inf}}, "NaN or Infinity"),
        ({"prompt": "x", "generation_config": {"temperature": math.nan}}, "NaN or Infinity"),
        ({"prompt": "x", "generation_config": {1: "x"}}, "not a string"),
        ({"prompt": "x", "metadata": {"when": object()}}, "not JSON"),
        ({"prompt": "x", "model": "../../v1beta/files/x"}, "model name"),
        ({"prompt": "x", "model": "models/gemini-2.5-flash:generateContent"}, "model name"),
        ({"prompt": "x", "model": "gemini-2.5-flash?key=x"}, "model name"),
    ],
)
def test_values_that_cannot_round_trip_are_refused(record, problem):
    with pytest.raises(InvalidPrompt, match=problem):
        parse_record(record)


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "models/gemini-2.0-flash-001",
                                   "tunedModels/my-model-123", "gemma-3-27b-it"])  # fmt: skip
def test_model_names_of_every_real_shape_are_accepted(model):
    assert parse_record({"prompt": "x", "model": model}).model == model


def test_deep_nesting_is_refused_without_recursing_out_of_the_stack():
    deep: dict = {}
    node = deep
    for _ in range(2000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(InvalidPrompt, match="nested more than"):
        parse_record({"prompt": "x", "metadata": deep})


def test_lone_surrogates_become_replacement_characters_and_round_trip():
    record = parse_record({"prompt": "bad \ud800 text", "metadata": {"k\udfff": "v\ud800"}})
    assert record.prompt == "bad \ufffd text"
    assert record.metadata == {"k\ufffd": "v\ufffd"}
    line = json.dumps(Result(index=0, metadata=record.metadata).to_json(), ensure_ascii=False)
    line.encode("utf-8")  # valid UTF-8


def test_a_byte_order_mark_and_nan_in_a_prompt_file(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "one"}\n{"prompt": "two", "metadata": {"x": NaN}}\n')
    first, second = read_records(path)
    assert not isinstance(first, InvalidPrompt) and first.prompt == "one"
    assert isinstance(second, InvalidPrompt) and "line 2: not valid JSON" in str(second)


def test_a_deeply_nested_line_is_that_lines_error(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "x", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    [only] = read_records(path)
    assert isinstance(only, InvalidPrompt) and str(only).startswith("line 1:")


@pytest.mark.parametrize("sha", ["/proc/self/environ", "../../../etc/passwd", "a" * 63, "A" * 64])
def test_stores_open_nothing_but_content_hashes(tmp_path: Path, sha):
    store = DirectoryMediaStore(tmp_path / "media")
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        store.get(sha)
    redis_store = RedisMediaStore(None, Keyspace("p"), 60)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        redis_store.get(sha)


def test_the_directory_store_never_follows_a_link_out_of_its_root(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the store")
    root = tmp_path / "media"
    (root / "aa").mkdir(parents=True)
    (root / "aa" / SHA).symlink_to(secret)
    with pytest.raises(ValueError, match="outside the store"):
        DirectoryMediaStore(root).get(SHA)
    (root / "bb").symlink_to(tmp_path)  # a linked directory
    (tmp_path / ("b" * 64)).write_text("also outside")
    with pytest.raises(ValueError, match="outside the store"):
        DirectoryMediaStore(root).get("b" * 64)


def test_a_staged_reference_round_trips():
    ref = MediaRef("video", "video/mp4", 10, SHA, video_metadata={"fps": 2})
    assert MediaRef.from_json(ref.to_json()) == ref


def test_a_bad_redis_url_is_named_without_its_password():
    from gemini_tasks.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load({"REDIS_URL": "http://:hunter2-secret@redis-host:6379/0"})
    assert "hunter2-secret" not in str(info.value) and "REDIS_URL" in str(info.value)
