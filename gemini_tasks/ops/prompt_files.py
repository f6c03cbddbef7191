"""Prompt files in, result files out.

Prompts come as JSON Lines (one record per line) or CSV (a prompt column; the other columns
become the record's metadata), each plain or gzip-compressed, from a path or from standard
input (`-`). Results go out as JSON Lines, one per prompt.

A file whose first record is not one of its format (a CSV named `.jsonl`, a JSONL without
the CSV's prompt column, a binary file) is refused as a whole before anything is queued,
instead of becoming one error per line; after the first record, a bad line is that prompt's
error and the rest go on.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import IO, cast

from gemini_tasks.errors import GeminiTasksError, InvalidPrompt
from gemini_tasks.jsonvalue import clean_text
from gemini_tasks.records import PromptRecord, parse_record
from gemini_tasks.result import Result

STDIN = "-"
GZIP_MAGIC = b"\x1f\x8b"
# Python's csv refuses fields over 128 KiB; a long prompt is one.
CSV_FIELD_LIMIT = 64 * 1024 * 1024

Read = PromptRecord | InvalidPrompt


class FileFormat(str, Enum):
    JSONL = "jsonl"
    CSV = "csv"

    def __str__(self) -> str:
        return self.value


class WrongFormat(GeminiTasksError):
    """The prompt file is not in the format it was read as; nothing of it was queued."""


class _Unreadable(InvalidPrompt):
    """A line that is not a record of the file's format at all (not JSON, not an object)."""


def file_format(source: str | Path, given: FileFormat | None = None) -> FileFormat:
    """The format to read `source` as: `given`, else by its name (`.csv`, `.csv.gz`)."""
    if given is not None:
        return given
    suffixes = [s.lower() for s in Path(str(source)).suffixes]
    return FileFormat.CSV if "csv" in {s.lstrip(".") for s in suffixes[-2:]} else FileFormat.JSONL


def _binary(source: str | Path) -> IO[bytes]:
    """The bytes of `source` (standard input for `-`), uncompressed if gzip's."""
    stdin = cast(io.BufferedReader, sys.stdin.buffer)
    raw = stdin if str(source) == STDIN else open(source, "rb")  # noqa: SIM115
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw))
    return raw


def _text(source: str | Path) -> IO[str]:
    # A byte-order mark is skipped; bytes that are not UTF-8 become U+FFFD.
    return io.TextIOWrapper(_binary(source), encoding="utf-8-sig", errors="replace", newline="")


def read_records(
    source: str | Path, fmt: FileFormat | None = None, prompt_column: str = "prompt"
) -> Iterator[Read]:
    """Each record of `source` as a checked record, or as the error that names its line.

    The first record is read before this returns: a file in the wrong format raises
    `WrongFormat` here, before a job exists.
    """
    fmt = file_format(source, fmt)
    text = _text(source)
    try:
        rows = _csv_rows(text, prompt_column) if fmt is FileFormat.CSV else _jsonl_rows(text)
        first = next(rows, None)
    except (UnicodeError, OSError, EOFError) as exc:  # a truncated or corrupt gzip file
        text.close()
        raise WrongFormat(f"{source}: cannot be read ({exc})") from None
    if isinstance(first, _Unreadable):
        text.close()
        raise WrongFormat(f"{source} is not a {fmt.value.upper()} prompt file: {first}"
                          f"{_hint(fmt)}")  # fmt: skip
    return _closing(text, itertools.chain([] if first is None else [first], rows))


def count_records(
    source: str | Path, fmt: FileFormat | None = None, prompt_column: str = "prompt"
) -> int | None:
    """How many prompts `source` holds (None for standard input, which is read once)."""
    if str(source) == STDIN:
        return None
    fmt = file_format(source, fmt)
    with _text(source) as text:
        if fmt is FileFormat.CSV:
            return sum(1 for _ in _csv_rows(text, prompt_column))
        return sum(1 for line in text if line.strip())


def _closing(text: IO[str], rows: Iterator[Read]) -> Iterator[Read]:
    with text:
        try:
            yield from rows
        except (UnicodeError, OSError, EOFError) as exc:  # a gzip file cut short, say
            raise WrongFormat(f"the prompt file could not be read to its end ({exc})") from None


def _hint(fmt: FileFormat) -> str:
    if fmt is FileFormat.JSONL:
        return "; for CSV, name it .csv (or give --format csv) and --prompt-column"
    return ""


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _jsonl_rows(text: IO[str]) -> Iterator[Read]:
    # NaN or Infinity, which Python's json accepts, are refused.
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            # A line that does not even start as an object is not a record of this format.
            error = InvalidPrompt if line.lstrip().startswith("{") else _Unreadable
            yield error(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except (ValueError, RecursionError) as exc:
            yield InvalidPrompt(f"line {number}: not valid JSON ({exc})")
            continue
        if not isinstance(raw, dict):
            yield _Unreadable(f"line {number}: a prompt record is a JSON object, not "
                              f"{type(raw).__name__}")  # fmt: skip
            continue
        try:
            yield parse_record(raw)
        except InvalidPrompt as exc:
            yield InvalidPrompt(f"line {number}: {exc}")


def _csv_rows(text: IO[str], prompt_column: str) -> Iterator[Read]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.DictReader(text)
    header = reader.fieldnames or []
    if prompt_column not in header:
        shown = ", ".join(repr(h) for h in header[:10]) or "none"
        yield _Unreadable(f"no column {prompt_column!r} (--prompt-column) in the header "
                          f"(columns: {shown})")  # fmt: skip
        return
    for row in reader:
        line = reader.line_num
        if None in row:
            yield InvalidPrompt(f"line {line}: more fields than the header has columns")
            continue
        metadata = {k: v for k, v in row.items() if k != prompt_column and v is not None}
        try:
            yield parse_record({"prompt": row[prompt_column] or "", "metadata": metadata})
        except InvalidPrompt as exc:
            yield InvalidPrompt(f"line {line}: {exc}")


def write_results(results: Iterable[Result], out: IO[str]) -> Iterator[Result]:
    """Write each result as one JSON line, passing it on to the caller."""
    for result in results:
        out.write(clean_text(json.dumps(result.to_json(), ensure_ascii=False)) + "\n")
        yield result
