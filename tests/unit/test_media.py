"""The seed's media fields, their order, the token rules and bad input."""

import base64
import logging
from pathlib import Path

import pytest

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.keyspace import Keyspace
from gemini_tasks.media.fields import arrange, guess_mime, media_sources
from gemini_tasks.media.refs import MAX_MEDIA_BYTES
from gemini_tasks.media.store import DirectoryMediaStore, open_store
from gemini_tasks.producer.staging import Stager
from gemini_tasks.records import parse_record

U = "https://e.com/u"


def described(sources):
    return [(s.kind, s.source, s.value if s.source != "bytes" else b"...", s.mime_type)
            for s in sources]  # fmt: skip


def test_seed_order_within_each_type_and_mime_types_follow_it():
    sources = media_sources({
        "audio_bytes": [b"x"], "audio_path": ["a.mp3"],
        "video_bytes": b"v", "video_path": "v.mov", "video_url": ["https://e.com/u.mp4"],
        "audio_mime_type": ["audio/mp3", "audio/wav"],
    })  # fmt: skip
    assert described(sources) == [
        ("video", "url", "https://e.com/u.mp4", "video/mp4"),
        ("video", "path", "v.mov", "video/quicktime"),
        ("video", "bytes", b"...", "video/mp4"),
        ("audio", "path", "a.mp3", "audio/mp3"),
        ("audio", "bytes", b"...", "audio/wav"),
    ]
    assert [s.where for s in sources] == [
        "video_url[0]",
        "video_path[0]",
        "video_bytes[0]",
        "audio_path[0]",
        "audio_bytes[0]",
    ]


@pytest.mark.parametrize(
    ("kind", "name", "mime"),
    [("audio", "x.mp3", "audio/mp3"), ("audio", "x.wav", "audio/wav"),
     ("audio", None, "audio/mp3"), ("video", "x.mp4", "video/mp4"),
     ("video", "x.txt", "video/mp4"), ("audio", "x.flac", "audio/flac")],
)  # fmt: skip
def test_mime_guessed_from_the_name_else_the_seed_default(kind, name, mime):
    assert guess_mime(kind, name) == mime


def test_video_metadata_belongs_to_the_ith_video():
    sources = media_sources({
        "video_url": ["https://e.com/1", "https://e.com/2"],
        "video_metadata": [{"fps": 10}, {"start_offset": "30s"}],
    })  # fmt: skip
    assert [s.video_metadata for s in sources] == [{"fps": 10}, {"start_offset": "30s"}]


def test_jsonl_bytes_are_base64():
    [source] = media_sources({"audio_bytes": {"base64": base64.b64encode(b"abc").decode()}})
    assert source.value == b"abc"


def kind(item: str) -> str:
    return "audio" if item.startswith("a") else "video"


def test_tokens_place_media_in_order():
    out = arrange("First <audio> then <video> last <audio>", ["a1", "a2", "v1"], kind, "p")
    assert out == ["First", "a1", "then", "v1", "last", "a2"]


def test_unused_files_are_appended_and_missing_ones_warned(caplog):
    out = arrange("<video> and <video>", ["v1", "a1"], kind, "task-7")
    assert out == ["v1", "and", "a1"]
    with caplog.at_level(logging.WARNING):
        arrange("<audio><audio>", ["a1"], kind, "task-7")
    assert "task-7" in caplog.text and "1 more media tokens than files" in caplog.text


def test_no_tokens_means_videos_then_audio_then_text():
    out = arrange("Analyze the provided media files.", ["a1", "a2", "v1"], kind, "p")
    assert out == ["v1", "a1", "a2", "Analyze the provided media files."]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"video_path": ["a.mp4"], "video_mime_type": ["video/mp4", "video/mp4"]},
         "video_mime_type has 2 entries but there are 1 video files"),
        ({"video_url": [U], "video_metadata": [{}, {}]},
         "video_metadata has 2 entries but there are only 1 videos"),
        ({"video_url": [U], "video_metadata": [{"start_offset": "10 seconds"}]},
         "video_metadata[0].start_offset must look like \"1250s\""),
        ({"video_url": [U], "video_metadata": [{"fps": -1}]}, "video_metadata[0].fps"),
        ({"video_url": [U], "video_metadata": [{"speed": 2}]}, "unknown field(s) speed"),
        ({"audio_bytes": ["not bytes"]}, "audio_bytes[0] must be bytes"),
        ({"audio_bytes": {"base64": "%%%"}}, "audio_bytes[0] is not valid base64"),
        ({"audio_path": [""]}, "audio_path[0] must be a non-empty string"),
        ({"image_path": "x.png"}, "unknown field(s) 'image_path'"),
    ],
)  # fmt: skip
def test_bad_media_fields_name_the_field(record, message):
    with pytest.raises(InvalidPrompt) as info:
        parse_record({"prompt": "p", **record})
    assert message in str(info.value)


class MemoryStore:
    def __init__(self):
        self.data = {}
        self.puts = 0

    def has(self, sha256):
        return sha256 in self.data

    def put(self, sha256, chunks):
        self.puts += 1
        self.data[sha256] = b"".join(chunks)

    def get(self, sha256):
        return self.data[sha256]

    def delete(self, sha256):
        self.data.pop(sha256, None)


def stage(record: dict):
    [source] = parse_record({"prompt": "p", **record}).media
    return Stager(MemoryStore()).stage(source)


def test_staging_bad_files_names_field_and_path_but_never_content(tmp_path: Path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    huge = tmp_path / "huge.mp4"
    with huge.open("wb") as file:  # sparse: no disk is used
        file.truncate(MAX_MEDIA_BYTES + 1)
    secret_bytes = tmp_path / "unreadable.mp3"
    secret_bytes.write_bytes(b"SECRET-CONTENT")
    secret_bytes.chmod(0)
    cases = [
        (
            {"audio_path": str(tmp_path / "missing.mp3")},
            "audio_path[0]: cannot read",
            "No such file",
        ),
        ({"audio_path": str(empty)}, "audio_path[0]", "is empty"),
        ({"video_path": str(huge)}, "video_path[0]", "over the Files API limit of 2 GiB"),
        ({"audio_bytes": b""}, "audio_bytes[0]", "is empty"),
        ({"audio_path": str(tmp_path)}, "audio_path[0]", "is not a file"),
    ]
    for record, where, problem in cases:
        with pytest.raises(InvalidPrompt) as info:
            stage(record)
        assert where in str(info.value) and problem in str(info.value)


def test_a_path_is_read_once_per_submit_and_content_is_deduplicated(tmp_path: Path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"video-bytes")
    store = MemoryStore()
    stager = Stager(store)
    [source] = parse_record({"prompt": "p", "video_path": str(path)}).media
    first = stager.stage(source)
    assert stager.stage(source) == first
    [same_bytes] = parse_record({"prompt": "p", "video_bytes": b"video-bytes"}).media
    assert stager.stage(same_bytes).sha256 == first.sha256
    assert len(store.data) == store.puts == 1


def test_a_shared_directory_store_round_trips_by_hash(tmp_path: Path):
    store = open_store(f"file://{tmp_path}/media", None, Keyspace("p"), ttl=60)  # type: ignore[arg-type]
    assert isinstance(store, DirectoryMediaStore)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"shared video " * 1000)
    ref = Stager(store).stage(parse_record({"prompt": "p", "video_path": str(path)}).media[0])
    assert store.has(ref.sha256) and store.get(ref.sha256) == path.read_bytes()
    assert not list((tmp_path / "media").rglob("*.partial"))
    store.delete(ref.sha256)
    assert not store.has(ref.sha256)
