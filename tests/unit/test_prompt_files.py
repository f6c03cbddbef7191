"""Prompt files: JSON Lines and CSV, plain or gzipped, from a path or standard input."""

import gzip
import io
from pathlib import Path

import pytest

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.ops.prompt_files import (
    FileFormat,
    WrongFormat,
    count_records,
    file_format,
    read_records,
    write_results,
)
from gemini_tasks.records import PromptRecord
from gemini_tasks.result import Result


def test_bad_lines_become_errors_naming_the_line(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n\n{"prompt": \n{"nope": 1}\n{"prompt": "b"}\n')
    records = list(read_records(path))
    assert count_records(path) == len(records) == 4
    assert isinstance(records[0], PromptRecord)
    assert isinstance(records[1], InvalidPrompt) and str(records[1]).startswith("line 3: not valid")
    assert isinstance(records[2], InvalidPrompt) and str(records[2]).startswith("line 4: unknown")
    assert isinstance(records[3], PromptRecord)


def test_results_are_written_one_per_line():
    out = io.StringIO()
    passed = list(write_results([Result(index=0, response="x"), Result(index=1)], out))
    assert len(passed) == 2
    assert out.getvalue().count("\n") == 2


def _read(path, **how) -> list:
    return list(read_records(path, **how))


def test_a_gzipped_jsonl_file_is_read_by_its_content(tmp_path: Path):
    lines = b'{"prompt": "a"}\n{"prompt": "b"}\n'
    for name in ("p.jsonl.gz", "p.jsonl"):  # gzip is known by its first bytes, not its name
        path = tmp_path / name
        path.write_bytes(gzip.compress(lines))
        assert [r.prompt for r in _read(path)] == ["a", "b"]
        assert count_records(path) == 2


def test_a_csv_file_has_a_prompt_column_and_the_rest_is_metadata(tmp_path: Path):
    path = tmp_path / "q.csv"
    path.write_text(
        'id,question,lang\n1,"What is ""x"",\nreally?",en\n2,Why?,fr\n3,extra,en,oops\n'
    )
    records = _read(path, prompt_column="question")
    assert count_records(path, prompt_column="question") == 3
    assert records[0].prompt == 'What is "x",\nreally?'
    assert records[0].metadata == {"id": "1", "lang": "en"}
    assert records[1].prompt == "Why?"
    assert isinstance(records[2], InvalidPrompt) and "more fields" in str(records[2])


def test_a_csv_without_the_prompt_column_is_refused_whole(tmp_path: Path):
    path = tmp_path / "q.csv.gz"
    path.write_bytes(gzip.compress(b"id,text\n1,hello\n"))
    with pytest.raises(WrongFormat, match=r"no column 'prompt'.*'id', 'text'"):
        read_records(path)
    assert [r.prompt for r in _read(path, prompt_column="text")] == ["hello"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"id,prompt\n1,hello\n", "not valid JSON"),  # a CSV named .jsonl
        (b'["a list"]\n{"prompt": "b"}\n', "a JSON object, not list"),
        (bytes(range(256)) * 4, "not valid JSON"),  # binary
    ],
)
def test_a_file_not_in_its_format_is_refused_before_anything_is_read(tmp_path, content, why):
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    with pytest.raises(WrongFormat, match=why) as raised:
        read_records(path)
    assert "--prompt-column" in str(raised.value)


def test_a_gzip_file_cut_short_is_an_error_not_a_crash(tmp_path: Path):
    path = tmp_path / "p.jsonl.gz"
    whole = gzip.compress(b"".join(b'{"prompt": "p%d"}\n' % i for i in range(20000)))
    path.write_bytes(whole[: len(whole) // 2])
    records = read_records(path)
    with pytest.raises(WrongFormat, match="could not be read to its end"):
        list(records)


def test_standard_input_is_read_once_and_not_counted(monkeypatch):
    stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(gzip.compress(b'{"prompt": "in"}\n'))))
    monkeypatch.setattr("sys.stdin", stdin)
    assert count_records("-") is None
    assert [r.prompt for r in read_records("-")] == ["in"]


def test_the_format_comes_from_the_name_unless_given():
    assert file_format("a.csv") is FileFormat.CSV
    assert file_format("a.CSV.gz") is FileFormat.CSV
    assert file_format("a.jsonl.gz") is FileFormat.JSONL
    assert file_format("-") is FileFormat.JSONL
    assert file_format("-", FileFormat.CSV) is FileFormat.CSV
