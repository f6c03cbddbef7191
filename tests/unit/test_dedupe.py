"""Identical requests (`--dedupe`): what names a request, and what a copy takes of an answer."""

from gemini_tasks.errors import ErrorKind
from gemini_tasks.result import Result
from gemini_tasks.scheduler import request_digest


def test_a_request_is_named_by_its_model_and_contents_not_by_their_order_in_json():
    one = request_digest("m", {"prompt": "p", "generation_config": {"a": 1, "b": 2}})
    assert one == request_digest("m", {"generation_config": {"b": 2, "a": 1}, "prompt": "p"})
    assert one != request_digest("other", {"prompt": "p", "generation_config": {"a": 1, "b": 2}})
    assert one != request_digest("m", {"prompt": "p", "generation_config": {"a": 1, "b": 3}})


def _answered() -> Result:
    made = Result(index=3, metadata={"row": 3}, response="yes", model="m", task_id="job-3")
    made.usage, made.key_id, made.cost, made.attempts = {"prompt_token_count": 5}, "k1", 0.2, 2
    return made


def test_a_copy_takes_the_answer_but_neither_the_call_nor_the_metadata_of_another_prompt():
    copy = Result(index=7, metadata={"row": 7}, task_id="job-7")
    copy.fail(ErrorKind.SERVER, "an earlier attempt failed")
    copy.reuse(_answered().answer())

    assert copy.ok and copy.response == "yes" and copy.model == "m"
    assert copy.reused_from == "job-3" and copy.metadata == {"row": 7} and copy.index == 7
    assert copy.usage is None and copy.key_id is None and copy.cost == 0 and copy.attempts == 0


def test_a_prompt_that_finds_its_own_answer_takes_its_call_as_its_own():
    again = Result(index=3, metadata={"row": 3}, task_id="job-3")
    again.reuse(_answered().answer(), own=True)

    assert again.reused_from is None and again.cost == 0.2 and again.attempts == 2
    assert again.usage == {"prompt_token_count": 5} and again.key_id == "k1"


def test_an_answer_passed_on_keeps_naming_the_prompt_whose_call_made_it():
    copy = Result(index=9, task_id="other-9")
    copy.reuse(_answered().answer())
    assert copy.answer()["reused_from"] == "job-3"
