"""Reading a job's stored results from the result backend, a chunk of indexes at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from celery import states

from gemini_tasks.errors import ErrorKind
from gemini_tasks.result import Result
from gemini_tasks.runtime import Runtime

CHUNK = 500
_PENDING = frozenset({states.PENDING, states.RECEIVED, states.STARTED, states.RETRY})


def task_id(job_id: str, index: int) -> str:
    """A prompt's task id: its job's id and its position."""
    return f"{job_id}-{index}"


def chunks(indexes: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    """`indexes` in lists of at most `size`."""
    chunk: list[int] = []
    for index in indexes:
        chunk.append(index)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ResultReader:
    """The stored state of one job's tasks."""

    def __init__(self, rt: Runtime, job_id: str):
        self.rt, self.job_id = rt, job_id
        self.backend = rt.backend

    def _raw(self, indexes: list[int]) -> list[bytes | str | None]:
        keys = [self.backend.get_key_for_task(task_id(self.job_id, i)) for i in indexes]
        return list(self.rt.results.mget(keys))

    def finished(self, indexes: list[int]) -> dict[int, Result]:
        """The results among `indexes` that are final."""
        done: dict[int, Result] = {}
        for index, value in zip(indexes, self._raw(indexes), strict=True):
            if value is None:
                continue
            meta = self.backend.decode_result(value if isinstance(value, bytes) else value.encode())
            status = meta.get("status")
            if status == states.SUCCESS:
                done[index] = Result.from_json(meta["result"])
            elif status not in _PENDING:
                tid = task_id(self.job_id, index)
                done[index] = Result(
                    index=index,
                    error=f"task {tid} ended {status}: {meta.get('result')}",
                    error_kind=ErrorKind.LOST,
                    task_id=tid,
                )
        return done

    def stored(self, indexes: list[int]) -> set[int]:
        """Which of `indexes` have any stored state (started, waiting or done)."""
        return {i for i, v in zip(indexes, self._raw(indexes), strict=True) if v is not None}

    def delete(self, indexes: list[int]) -> None:
        keys = [self.backend.get_key_for_task(task_id(self.job_id, i)) for i in indexes]
        if keys:
            self.rt.results.delete(*keys)
