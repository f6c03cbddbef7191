import io
from pathlib import Path

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.ops.jsonl import count_records, read_records, write_results
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
