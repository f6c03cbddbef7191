"""A `--cache` job's prefixes and requests: what goes in a context cache, what stays."""

from google.genai import types

from gemini_tasks.errors import InvalidRequest
from gemini_tasks.media.refs import MediaRef
from gemini_tasks.records import StagedRecord
from gemini_tasks.worker.caching import CacheUse, prefix_of, too_small
from gemini_tasks.worker.classify import classify_status
from gemini_tasks.worker.decide import Action, Call, PromptState, RetryPolicy, decide
from gemini_tasks.worker.request import build_request

VIDEO = MediaRef("video", "video/mp4", 10, "a" * 64)
OTHER_VIDEO = MediaRef("video", "video/mp4", 10, "b" * 64)
AUDIO = MediaRef("audio", "audio/mp3", 10, "c" * 64)
TOOLS = {"tools": [{"function_declarations": [{"name": "look", "description": "d"}]}]}


def test_prompts_sharing_a_system_instruction_and_leading_media_share_a_prefix():
    one = prefix_of(StagedRecord("<video> What happens first?", media=(VIDEO,),
                                 system_instruction="Be brief."), "m")  # fmt: skip
    two = prefix_of(StagedRecord("<video> And last?", media=(VIDEO,),
                                 system_instruction="Be brief."), "m")  # fmt: skip
    assert one is not None and two is not None
    assert one.digest == two.digest and one.lead == (0,)
    other_media = prefix_of(StagedRecord("<video> And last?", media=(OTHER_VIDEO,),
                                         system_instruction="Be brief."), "m")  # fmt: skip
    other_model = prefix_of(StagedRecord("<video> And last?", media=(VIDEO,),
                                         system_instruction="Be brief."), "n")  # fmt: skip
    assert other_media and other_model
    assert len({one.digest, other_media.digest, other_model.digest}) == 3


def test_media_after_the_first_text_stay_in_the_request():
    record = StagedRecord("Compare <video> with <audio>", media=(VIDEO, AUDIO),
                          system_instruction="Be brief.")  # fmt: skip
    prefix = prefix_of(record, "m")
    assert prefix is not None and prefix.lead == ()
    leading = prefix_of(StagedRecord("<audio><video> Compare them", media=(VIDEO, AUDIO)), "m")
    assert leading is not None and leading.lead == (1, 0)


def test_a_prompt_with_nothing_shared_to_cache_has_no_prefix():
    assert prefix_of(StagedRecord("just words"), "m") is None
    # Media with no text after them: a request needs contents of its own.
    assert prefix_of(StagedRecord("", media=(VIDEO,)), "m") is None
    tools = prefix_of(StagedRecord("call it", generation_config=TOOLS), "m")
    assert tools is not None and tools.config == TOOLS


def test_a_request_naming_a_cache_leaves_out_what_the_cache_holds():
    record = StagedRecord("<video> What happens?", media=(VIDEO,), system_instruction="Be brief.",
                          generation_config={"temperature": 0.1, **TOOLS})  # fmt: skip
    video = types.Part(file_data=types.FileData(file_uri="https://x/v1beta/files/v"))
    cached = build_request(record, "m", media_parts=[video], cache=CacheUse("cachedContents/c", 1))
    assert cached.config is not None and cached.config.cached_content == "cachedContents/c"
    assert cached.config.system_instruction is None and cached.config.tools is None
    assert cached.config.temperature == 0.1
    assert cached.content.parts == [types.Part(text="What happens?")]
    plain = build_request(record, "m", media_parts=[video])
    assert plain.config is not None and plain.config.system_instruction == "Be brief."
    assert plain.content.parts == [video, types.Part(text="What happens?")]


def test_gemini_refusing_a_small_cache_says_by_how_much():
    message = "Cached content is too small. total_token_count=896, min_total_token_count=1024"
    assert too_small(message) == (896, 1024)
    assert too_small("400 INVALID_ARGUMENT: Request contains an invalid argument.") is None


def test_an_expired_cache_is_made_again_once_per_project():
    error = classify_status(7, "CachedContent not found (or permission denied)")
    assert isinstance(error, InvalidRequest) and error.about_cache
    policy = RetryPolicy(max_retries=3, backoff=1.0, backoff_max=5.0)
    first = decide(error, PromptState(), policy, Call("a", False, cached=True))
    assert first.action is Action.RECACHE and first.state.recached == {"a"}
    assert decide(error, first.state, policy, Call("a", False, cached=True)).action is Action.FAIL
    assert decide(error, first.state, policy, Call("b", False, cached=True)).action is (
        Action.RECACHE)  # fmt: skip
    assert decide(error, PromptState(), policy, Call("a", False)).action is Action.FAIL
