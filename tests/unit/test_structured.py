"""Structured output: which configs ask for JSON, and what an answer then puts in a result."""

import pytest

from gemini_tasks.errors import ErrorKind
from gemini_tasks.result import Result
from gemini_tasks.worker.response import parse_json, wants_json

SCHEMA = {"type": "OBJECT", "properties": {"a": {"type": "INTEGER"}}}


@pytest.mark.parametrize(
    ("config", "wanted"),
    [
        ({}, False),
        ({"temperature": 0}, False),
        ({"response_mime_type": "application/json"}, True),
        ({"response_mime_type": "Application/JSON"}, True),
        ({"response_schema": SCHEMA}, True),
        ({"response_json_schema": {"type": "object"}}, True),
        ({"response_mime_type": "application/json", "response_schema": SCHEMA}, True),
        ({"response_mime_type": "text/x.enum", "response_schema": SCHEMA}, False),
        ({"response_mime_type": "text/plain"}, False),
    ],
)
def test_which_configs_ask_for_json(config, wanted):
    assert wants_json(config) is wanted


def _answered(text: str, truncated: bool = False) -> Result:
    result = Result(index=0, response=text, truncated=truncated)
    return result


def test_a_json_answer_is_parsed():
    result = _answered('{"a": 1, "b": ["x"]}')
    parse_json(result, {"response_mime_type": "application/json"})
    assert result.ok and result.parsed == {"a": 1, "b": ["x"]}


def test_text_asked_for_stays_text():
    result = _answered("not json")
    parse_json(result, {})
    assert result.ok and result.parsed is None


def test_an_answer_that_does_not_parse_is_invalid_json_and_keeps_its_text():
    result = _answered('{"a": 1}."\n}')
    parse_json(result, {"response_schema": SCHEMA})
    assert result.error_kind is ErrorKind.INVALID_JSON and result.parsed is None
    assert result.response == '{"a": 1}."\n}'
    assert "Extra data" in (result.error or "")


def test_a_cut_answer_says_it_was_cut():
    result = _answered('{"a": "long', truncated=True)
    parse_json(result, {"response_mime_type": "application/json"})
    assert result.error_kind is ErrorKind.INVALID_JSON
    assert "cut at max_output_tokens" in (result.error or "")


def test_a_failed_prompt_is_left_as_it_failed():
    result = Result(index=0)
    result.fail(ErrorKind.BLOCKED, "blocked: SAFETY")
    parse_json(result, {"response_mime_type": "application/json"})
    assert result.error_kind is ErrorKind.BLOCKED
