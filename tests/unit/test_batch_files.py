"""File batches: a request as a line of a batch's JSONL file, a responses file's line as the
answer it stands for, and which batches go inline and which as a file."""

import base64
import json

import pytest
from google import genai
from google.genai import types

from gemini_tasks.records import parse_staged
from gemini_tasks.worker import batcher
from gemini_tasks.worker.batcher import BatchInput, file_line, line_answer
from gemini_tasks.worker.request import build_request

MEDIA = bytes(range(256))  # every base64 symbol, URL-safe ones included
RECORD = {
    "prompt": "describe <audio>",
    "system_instruction": "be brief",
    "generation_config": {
        "temperature": 0.2,
        "max_output_tokens": 50,
        "thinking_config": {"thinking_budget": 0},
        "response_mime_type": "application/json",
        "response_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [{"google_search": {}}],
    },
}


class _Sent(Exception):
    pass


def _request(index: int = 3) -> types.InlinedRequest:
    record = parse_staged({**RECORD, "media": []})
    request = build_request(record, "gemini-2.5-flash")
    audio = types.Part(inline_data=types.Blob(data=MEDIA, mime_type="audio/mp3"))
    contents = [types.Content(role="user", parts=[*request.content.parts, audio])]
    return types.InlinedRequest(contents=contents, config=request.config,
                                metadata={"index": str(index)})  # fmt: skip


def _sent_inline(client: genai.Client, request: types.InlinedRequest, monkeypatch) -> dict:
    """The request's JSON in the body google-genai sends to create an inline batch."""
    body: dict = {}

    def capture(method, path, request_dict, http_options=None):
        body.update(request_dict)
        raise _Sent

    monkeypatch.setattr(client._api_client, "request", capture)
    with pytest.raises(_Sent):
        client.batches.create(model="gemini-2.5-flash", src=[request])
    [inline] = body["batch"]["inputConfig"]["requests"]["requests"]
    return json.loads(json.dumps(inline["request"]))


def test_a_file_line_holds_the_request_google_genai_sends_inline(monkeypatch):
    client = genai.Client(api_key="unused")
    line = file_line(client, 3, _request())

    assert line.endswith(b"\n") and line.count(b"\n") == 1
    entry = json.loads(line)
    assert entry["key"] == "3"
    assert entry["request"] == _sent_inline(client, _request(), monkeypatch)


def test_a_file_line_is_in_the_rest_shape_gemini_reads():
    request = json.loads(file_line(genai.Client(api_key="unused"), 0, _request()))["request"]

    # Generation settings under generationConfig; the rest beside contents.
    assert set(request) == {"contents", "systemInstruction", "safetySettings", "tools",
                            "generationConfig"}  # fmt: skip
    assert request["systemInstruction"]["parts"] == [{"text": "be brief"}]
    config = request["generationConfig"]
    assert config["temperature"] == 0.2 and config["maxOutputTokens"] == 50
    assert config["responseSchema"]["type"] == "OBJECT"  # normalised as the SDK does
    assert "thinkingConfig" in config and "tools" not in config
    text, audio = request["contents"][0]["parts"]
    assert text == {"text": "describe"}
    data = audio["inlineData"]["data"]
    assert base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)) == MEDIA


def test_a_responses_line_reads_as_the_inline_answer_it_stands_for():
    line = {
        "key": "7",
        "response": {
            "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"},
                            "finishReason": "STOP", "someFieldOfTomorrow": 1}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
            "modelVersion": "gemini-2.5-flash",
        },
    }  # fmt: skip
    answer = line_answer(json.dumps(line).encode())

    assert answer is not None and answer.metadata == {"index": "7"} and answer.error is None
    assert answer.response.text == "hi"
    assert answer.response.candidates[0].finish_reason == types.FinishReason.STOP
    assert answer.response.usage_metadata.prompt_token_count == 3


def test_a_responses_line_with_an_error_reads_as_an_inline_error():
    line = {"key": "9", "error": {"code": 3, "message": "bad", "status": "INVALID_ARGUMENT"}}
    answer = line_answer(json.dumps(line).encode())

    assert answer is not None and answer.metadata == {"index": "9"} and answer.response is None
    assert (answer.error.code, answer.error.message) == (3, "bad")


@pytest.mark.parametrize("line", [b"", b"not json", b"[1, 2]"])
def test_a_line_that_is_no_json_object_is_no_answer(line):
    assert line_answer(line) is None


def test_a_batch_goes_inline_up_to_its_limit_and_as_a_file_beyond(monkeypatch):
    monkeypatch.setattr(batcher, "FILE_BYTES", 30)
    request = types.InlinedRequest(contents="q")
    with BatchInput(inline_limit=20, token_limit=1000) as built:
        built.add(0, request, b"a" * 10 + b"\n", 5)
        built.add(1, request, b"b" * 8 + b"\n", 5)
        assert not built.as_file and len(built.inline) == 2  # 20 bytes: inline
        assert built.fits(b"c" * 9 + b"\n", 5) and not built.fits(b"c" * 10 + b"\n", 5)
        built.add(2, request, b"c" * 9 + b"\n", 5)
        assert built.as_file and built.inline == []  # past the limit: only its lines go
        built.lines.seek(0)
        assert built.lines.read().splitlines() == [b"a" * 10, b"b" * 8, b"c" * 9]
        assert built.indexes == [0, 1, 2] and built.size == 30 and built.tokens == 15
    assert built.lines.closed


def test_a_batch_is_cut_at_the_enqueued_token_limit():
    request = types.InlinedRequest(contents="q")
    with BatchInput(inline_limit=1000, token_limit=100) as built:
        built.add(0, request, b"a\n", 60)
        assert built.fits(b"b\n", 40) and not built.fits(b"b\n", 41)


def test_a_request_past_the_limits_alone_still_goes():
    with BatchInput(inline_limit=1, token_limit=1) as built:
        assert built.fits(b"x" * (batcher.FILE_BYTES + 1), 10)
