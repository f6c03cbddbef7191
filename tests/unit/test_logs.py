import json
import logging

from celery import Celery
from celery._state import _task_stack

from gemini_tasks.logs import JsonFormatter, TaskContext, configure


def record(message: str) -> logging.LogRecord:
    line = logging.LogRecord("gemini_tasks.tasks", logging.WARNING, __file__, 1, message, (), None)
    TaskContext().filter(line)
    return line


def test_outside_a_task_lines_carry_no_ids():
    line = record("hello")
    assert line.task_id is None and line.task_ids == ""


def test_inside_a_task_lines_name_the_task_and_its_job():
    def noop() -> None:
        return None

    task = Celery("t", set_as_current=False).task(noop, name="t.noop")
    task.push_request(id="job1-7", group="job1")
    _task_stack.push(task)
    try:
        line = record("attempt failed")
    finally:
        _task_stack.pop()
        task.pop_request()
    assert line.task_ids == " [task job1-7 job job1]"
    data = json.loads(JsonFormatter().format(line))
    assert data["message"] == "attempt failed"
    assert (data["task_id"], data["job_id"], data["level"]) == ("job1-7", "job1", "WARNING")


def test_configure_replaces_the_root_handlers():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("DEBUG", "json")
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.DEBUG
    finally:
        root.handlers, level = saved
        root.setLevel(level)
