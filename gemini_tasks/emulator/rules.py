"""Faults the emulator plays, as rules: which calls a rule hits, and how Gemini answers them.

A rule hits a call when every condition it names holds: the call's model, project, key or
service tier; a word in the prompt; the attempt number of this very request (the emulator
counts how often it has seen each request); a window of time since the rules were installed; and a
`share` of the calls that pass those. The share is not a coin flip: a call is hit when a
hash of (rule, request, attempt) falls below it, so the same prompts meet the same faults
on every run, however the workers' calls interleave. Tests rely on that: nothing here
depends on chance or on timing the test does not control.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

Answer = Literal[
    "500",  # INTERNAL
    "503",  # UNAVAILABLE: the model is overloaded
    "504",  # DEADLINE_EXCEEDED
    "499",  # CANCELLED
    "502",  # a proxy's HTML page, not JSON
    "429_capacity",  # RESOURCE_EXHAUSTED with no details: capacity, not the caller's quota
    "429_help",  # RESOURCE_EXHAUSTED with only a Help link
    "hang",  # no answer for `seconds`, then 504
    "hold",  # no answer until released (`POST /_emulator/release`), then as usual
    "delay",  # wait `seconds`, then as usual
    "empty_stop",  # 200, finishReason STOP, a candidate without parts
    "block_prompt",  # 200, promptFeedback.blockReason `reason`, no candidates
    "finish",  # 200, a candidate ended by finishReason `reason`, without content
    "max_tokens_empty",  # 200, MAX_TOKENS with empty content after thinking
    "malformed_json",  # 200, a JSON answer with a stray fragment after it
]
TERMINAL = frozenset(
    {"500", "503", "504", "499", "502", "429_capacity", "429_help", "hang", "empty_stop",
     "block_prompt", "finish", "max_tokens_empty", "malformed_json"}
)  # fmt: skip
ANSWERS = TERMINAL | {"hold", "delay"}


@dataclass(frozen=True)
class Call:
    """What a rule may look at in one call."""

    model: str
    project: str
    key_id: str
    text: str  # the request's text parts, joined
    digest: str  # identifies the request: the same prompt sent again has the same digest
    attempt: int  # 1 for the first time this request arrives, 2 for the next, ...
    elapsed: float  # seconds since the rules were installed
    tier: str = "standard"  # the service tier asked for: standard, flex or priority
    system: str = ""  # the system instruction's text: the request's, or its cache's
    cache: str | None = None  # the context cache it names, "cachedContents/<id>"
    cached_tokens: int = 0  # that cache's tokens, part of the prompt


@dataclass
class Rule:
    answer: str
    id: str = ""
    share: float = 1.0
    attempts: tuple[int, int] | None = None  # first and last attempt hit, 1-based
    models: frozenset[str] | None = None
    projects: frozenset[str] | None = None
    keys: frozenset[str] | None = None  # key ids
    tiers: frozenset[str] | None = None  # service tiers, e.g. flex: Flex sheds under load
    contains: str | None = None
    start: float | None = None  # the window, in seconds since the rules were installed
    end: float | None = None
    times: int | None = None  # hit at most this many calls in all
    seconds: float = 0.0  # for "hang" and "delay"
    reason: str = ""  # for "finish" and "block_prompt"
    hits: int = field(default=0, compare=False)

    def matches(self, call: Call) -> bool:
        return (
            (self.models is None or call.model in self.models)
            and (self.projects is None or call.project in self.projects)
            and (self.keys is None or call.key_id in self.keys)
            and (self.tiers is None or call.tier in self.tiers)
            and (self.contains is None or self.contains in call.text)
            and (self.attempts is None or self.attempts[0] <= call.attempt <= self.attempts[1])
            and (self.start is None or call.elapsed >= self.start)
            and (self.end is None or call.elapsed < self.end)
            and (self.times is None or self.hits < self.times)
            and self._in_share(call)
        )

    def _in_share(self, call: Call) -> bool:
        if self.share >= 1:
            return True
        seed = f"{self.id}|{call.digest}|{call.attempt}".encode()
        point = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") / 2**64
        return point < self.share


def _names(value: Any) -> frozenset[str] | None:
    return None if value is None else frozenset(str(v) for v in value)


def parse_rule(raw: dict[str, Any], index: int) -> Rule:
    """A rule from its JSON form (`answer` required); ValueError names what is wrong."""
    answer = str(raw.get("answer", ""))
    if answer not in ANSWERS:
        raise ValueError(f"rule {index}: answer must be one of {', '.join(sorted(ANSWERS))}")
    unknown = set(raw) - {
        "answer", "id", "share", "attempts", "models", "projects", "keys", "tiers", "contains",
        "start", "end", "times", "seconds", "reason",
    }  # fmt: skip
    if unknown:
        raise ValueError(f"rule {index}: unknown field(s) {', '.join(sorted(unknown))}")
    attempts = raw.get("attempts")
    return Rule(
        answer=answer,
        id=str(raw.get("id", index)),
        share=float(raw.get("share", 1.0)),
        attempts=None if attempts is None else (int(attempts[0]), int(attempts[1])),
        models=_names(raw.get("models")),
        projects=_names(raw.get("projects")),
        keys=_names(raw.get("keys")),
        tiers=_names(raw.get("tiers")),
        contains=raw.get("contains"),
        start=raw.get("start"),
        end=raw.get("end"),
        times=raw.get("times"),
        seconds=float(raw.get("seconds", 0.0)),
        reason=str(raw.get("reason", "")),
    )


def rates(error_500: float, error_503: float, hang: float, hang_seconds: float) -> list[Rule]:
    """The command line's fault rates as rules (each a share of all calls)."""
    rules = []
    if hang:
        rules.append(Rule("hang", id="hang-rate", share=hang, seconds=hang_seconds))
    if error_500:
        rules.append(Rule("500", id="500-rate", share=error_500))
    if error_503:
        rules.append(Rule("503", id="503-rate", share=error_503))
    return rules
