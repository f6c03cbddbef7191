"""The emulator's answers to generateContent: an echo of what arrived, or an answer without
text as Gemini gives them (blocked prompts, stopped candidates, empty answers).

The echo is deterministic and describes each part in order (text, and media by type, mime
type and content hash or URI), so a test sees exactly what reached Gemini.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from gemini_tasks.emulator.tokens import media_tokens, text_tokens

Body = dict[str, Any]
# The bytes of an uploaded file, by its URI; None for URIs Gemini fetches itself.
FileLookup = Callable[[str], bytes | None]


def decode_bytes(text: str) -> bytes:
    """A protobuf JSON `bytes` field: standard or URL-safe base64, padded or not."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def describe_part(part: Body, files: FileLookup) -> tuple[str, int]:
    """A deterministic description of one request part, and its token count."""
    if "text" in part:
        text = str(part["text"])
        return text, text_tokens(text)
    meta = part.get("videoMetadata")
    extra = f" {json.dumps(meta, sort_keys=True)}" if meta else ""
    if "inlineData" in part:
        blob = part["inlineData"]
        data = decode_bytes(blob.get("data", ""))
        digest = hashlib.sha256(data).hexdigest()[:16]
        mime = str(blob.get("mimeType"))
        return f"[inline {mime} sha256:{digest}{extra}]", media_tokens(data, mime)
    if "fileData" in part:
        ref = part["fileData"]
        uri, mime = str(ref.get("fileUri")), str(ref.get("mimeType"))
        content = files(uri)
        source = uri if content is None else f"sha256:{hashlib.sha256(content).hexdigest()[:16]}"
        return f"[file {mime} {source}{extra}]", media_tokens(content, mime)
    return f"[{sorted(part)[0] if part else 'empty'} part]", 1


def system_text(instruction: Any) -> str:
    """The text of a system instruction (a Content), its parts joined."""
    parts = instruction.get("parts", []) if isinstance(instruction, dict) else []
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def prompt_tokens(contents: list[Body], files: FileLookup, system: str = "") -> int:
    """Input tokens of a request: its parts and its system instruction, which Gemini counts
    as input too (ai.google.dev/gemini-api/docs/tokens)."""
    parts = sum(describe_part(p, files)[1] for c in contents for p in c.get("parts", []))
    return parts + (text_tokens(system) if system else 0)


def usage(prompt: int, output: int, thoughts: int = 0, cached: int = 0) -> Body:
    """usageMetadata: the total includes thinking; a zero output count is omitted.

    `cached` tokens came from a context cache the request named: they are part of the prompt
    count too, and are reported again as `cachedContentTokenCount` and `cacheTokensDetails`
    (ai.google.dev/api/generate-content#UsageMetadata; googleapis/python-genai#795)."""
    body: Body = {
        "promptTokenCount": prompt,
        "totalTokenCount": prompt + output + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if output:
        body["candidatesTokenCount"] = output
    if thoughts:
        body["thoughtsTokenCount"] = thoughts
    if cached:
        body["cachedContentTokenCount"] = cached
        body["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    return body


def wants_json(config: Body) -> bool:
    """Whether the request asks for a JSON answer (either spelling: the parser takes both)."""
    mime = config.get("responseMimeType", config.get("response_mime_type"))
    return str(mime or "").lower() == "application/json"


def echo(
    model: str,
    contents: list[Body],
    config: Body,
    response_id: str,
    files: FileLookup,
    thoughts: int = 0,
    system: str = "",
    malformed: bool = False,
    cached: int = 0,
) -> Body:
    """An answer that echoes what it received (and the system instruction, so a test sees
    that it arrived); a JSON object holding that echo when the request asks for JSON.

    A JSON answer cut at maxOutputTokens is not JSON any more, as Gemini's are not
    (googleapis/python-genai#1039, #2266); `malformed` plays the valid object followed by a
    stray fragment that Gemini sometimes sends despite `application/json` (MemberJunction/MJ#3065).
    A request naming a context cache arrives here with the cache's contents ahead of its own
    and the cache's system instruction, and `cached` its token count, so it is answered as
    the same request sent whole would be.
    """
    described = [describe_part(p, files) for c in contents for p in c.get("parts", [])]
    # The system instruction counts as input (ai.google.dev/gemini-api/docs/tokens).
    prompt = sum(tokens for _, tokens in described) + (text_tokens(system) if system else 0)
    text = "echo: " + " | ".join(desc for desc, _ in described)
    if system:
        text += f" [system: {system}]"
    if wants_json(config):
        text = json.dumps({"echo": text}) + ('."\n}' if malformed else "")
    finish = "STOP"
    max_tokens = config.get("maxOutputTokens")
    if isinstance(max_tokens, int) and text_tokens(text) > max_tokens:
        text, finish = text[: max_tokens * 4], "MAX_TOKENS"
    count = int(config.get("candidateCount") or 1)
    candidates = [
        {
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": finish,
            "index": i,
        }
        for i in range(count)
    ]
    return {
        "candidates": candidates,
        "usageMetadata": usage(prompt, text_tokens(text) * count, thoughts, cached),
        "modelVersion": model,
        "responseId": response_id,
    }


def without_text(
    answer: str, reason: str, model: str, prompt: int, response_id: str, cached: int = 0
) -> Body:
    """A 200 answer that carries no text, as Gemini sends them."""
    body: Body = {"modelVersion": model, "responseId": response_id}
    if answer == "block_prompt":
        # No candidates at all (vercel/ai#19758, vercel/ai#4265).
        body["promptFeedback"] = {"blockReason": reason or "PROHIBITED_CONTENT"}
        body["usageMetadata"] = usage(prompt, 0, cached=cached)
    elif answer == "finish":
        # SAFETY, RECITATION, PROHIBITED_CONTENT, OTHER, ... and no content (the
        # FinishReason enum in google-genai's types.py).
        body["candidates"] = [{"finishReason": reason or "SAFETY", "index": 0}]
        body["usageMetadata"] = usage(prompt, 0, cached=cached)
    elif answer == "max_tokens_empty":
        # A thinking model spent its budget thinking: `content: {}`.
        body["candidates"] = [{"content": {}, "finishReason": "MAX_TOKENS", "index": 0}]
        body["usageMetadata"] = usage(prompt, 0, thoughts=1024, cached=cached)
    elif answer == "empty_stop":
        # STOP with a content that has no parts; a retry usually answers
        # (BerriAI/litellm#24442, google-gemini/deprecated-generative-ai-python#744).
        body["candidates"] = [{"content": {"role": "model"}, "finishReason": "STOP", "index": 0}]
        body["usageMetadata"] = usage(prompt, 0, cached=cached)
    else:
        raise ValueError(f"{answer} is not an answer without text")
    return body
