"""Prompt files in JSON Lines: one prompt record per line in, one result per line out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from gemini_tasks.errors import InvalidPrompt
from gemini_tasks.jsonvalue import clean_text
from gemini_tasks.records import PromptRecord, parse_record
from gemini_tasks.result import Result


def count_records(path: Path) -> int:
    """How many non-blank lines `path` has: the number of prompts it will submit."""
    with path.open("rb") as file:
        return sum(1 for line in file if line.strip())


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def read_records(path: Path) -> Iterator[PromptRecord | InvalidPrompt]:
    """Each non-blank line as a checked record, or as the error that names its line.

    A byte-order mark at the start of the file is skipped, bytes that are not UTF-8 become
    U+FFFD, and NaN or Infinity (which Python's json accepts) are refused.
    """
    with path.open("r", encoding="utf-8-sig", errors="replace") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line, parse_constant=_refuse_constant)
            except json.JSONDecodeError as exc:
                yield InvalidPrompt(
                    f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
                )
                continue
            except (ValueError, RecursionError) as exc:
                yield InvalidPrompt(f"line {number}: not valid JSON ({exc})")
                continue
            try:
                yield parse_record(raw)
            except InvalidPrompt as exc:
                yield InvalidPrompt(f"line {number}: {exc}")


def write_results(results: Iterable[Result], out: IO[str]) -> Iterator[Result]:
    """Write each result as one JSON line, passing it on to the caller."""
    for result in results:
        out.write(clean_text(json.dumps(result.to_json(), ensure_ascii=False)) + "\n")
        yield result
