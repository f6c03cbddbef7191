import pytest

from gemini_tasks.errors import NoApiKeys
from gemini_tasks.keys import key_id, load_keys, redact


def test_all_numbered_keys_in_numeric_order():
    env = {"GEMINI_API_KEY_10": "k10", "GEMINI_API_KEY_2": "k2", "GEMINI_API_KEY_1": "k1"}
    assert [k.label for k in load_keys(env=env)] == [
        "GEMINI_API_KEY_1",
        "GEMINI_API_KEY_2",
        "GEMINI_API_KEY_10",
    ]


def test_single_key_fallback():
    [key] = load_keys(env={"GEMINI_API_KEY": "solo"})
    assert key.label == "GEMINI_API_KEY"


def test_named_keys_skip_missing_ones():
    keys = load_keys(["A", "B"], env={"B": "secret-b"})
    assert [k.label for k in keys] == ["B"]


def test_no_keys_is_a_clear_error():
    with pytest.raises(NoApiKeys, match="No valid API keys found"):
        load_keys(env={})


def test_same_secret_under_two_names_is_one_key():
    assert len(load_keys(env={"GEMINI_API_KEY_1": "same", "GEMINI_API_KEY_2": "same"})) == 1


def test_id_is_stable_and_does_not_contain_the_secret():
    [key] = load_keys(env={"GEMINI_API_KEY_1": "fake-secret-value"})
    assert key.id == key_id("fake-secret-value")
    assert "fake-secret-value" not in key.id + repr(key) + str(key)


def test_redact_replaces_secrets_with_ids():
    keys = load_keys(env={"GEMINI_API_KEY_1": "fake-secret-value"})
    assert redact("bad key fake-secret-value!", keys) == f"bad key {keys[0].id}!"
