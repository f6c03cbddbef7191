"""An aiohttp server that answers the Gemini REST API the way Google's does.

The SDK is pointed at it with `GOOGLE_GEMINI_BASE_URL` (or `HttpOptions.base_url`). It
knows a set of keys, each in a project, enforces per-project, per-model quotas, can inject
faults and latency, and keeps statistics under `/_emulator/`, a path Gemini does not use.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from gemini_tasks.emulator import payloads
from gemini_tasks.emulator.files import FileStore
from gemini_tasks.emulator.quotas import QuotaBook
from gemini_tasks.keys import key_id
from gemini_tasks.limits import Limits

log = logging.getLogger(__name__)

API_VERSIONS = ("v1", "v1beta", "v1alpha")
METHODS = ("generateContent", "countTokens")
MAX_CANDIDATES = 8


@dataclass
class Faults:
    """Faults the emulator injects; rates are shares of all admitted calls, from 0 to 1."""

    latency: float = 0.0
    latency_jitter: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 600.0


@dataclass
class EmulatorConfig:
    keys: dict[str, str] = field(default_factory=dict)  # secret -> project
    # For dry runs: every key is accepted, each in a project of its own.
    any_key: bool = False
    limits: Limits = field(default_factory=Limits)
    model_limits: dict[str, Limits] = field(default_factory=dict)
    project_limits: dict[str, Limits] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None
    # Gemini's documented limit on a request's size, inline media included.
    request_limit_bytes: int = 20 * 1024 * 1024
    file_ttl_seconds: float = 48 * 3600
    video_processing_seconds: float = 1.0


@dataclass
class _Stats:
    by_outcome: Counter = field(default_factory=Counter)
    by_key: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_minute: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    calls: list[dict[str, Any]] = field(default_factory=list)
    uploads: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    def record(
        self,
        outcome: str,
        key: str | None,
        project: str | None,
        model: str,
        digest: str | None,
        started: float,
    ) -> None:
        now = time.time()
        self.by_outcome[outcome] += 1
        self.by_key[key or "none"][outcome] += 1
        self.by_minute[int(now // 60)][outcome] += 1
        self.calls.append(
            {
                "t": now,
                "started": started,
                "key_id": key,
                "project": project,
                "model": model,
                "outcome": outcome,
                "request_sha256": digest,
            }
        )

    def to_json(self, with_calls: bool, files: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total": sum(self.by_outcome.values()),
            "by_outcome": dict(self.by_outcome),
            "by_key": {k: dict(v) for k, v in self.by_key.items()},
            "by_minute": {str(m): dict(c) for m, c in sorted(self.by_minute.items())},
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "uploads": dict(self.uploads),
            "files": files,
        }
        if with_calls:
            out["calls"] = self.calls
        return out


def _camel_case(value: Any) -> Any:
    """Request JSON with every key in lowerCamelCase.

    Gemini parses requests as protobuf JSON, which accepts `file_uri` and `fileUri` alike;
    google-genai sends some nested fields in snake_case.
    """
    if isinstance(value, list):
        return [_camel_case(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            head, *rest = str(key).split("_")
            out[head + "".join(w[:1].upper() + w[1:] for w in rest)] = _camel_case(item)
        return out
    return value


class _Rejected(Exception):
    def __init__(self, status: int, body: dict, outcome: str, key: str | None = None):
        super().__init__(outcome)
        self.status, self.body, self.outcome, self.key = status, body, outcome, key


@web.middleware
async def _answer_rejections(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request the emulator refuses gets Gemini's error body and status."""
    try:
        return await handler(request)
    except _Rejected as rejected:
        return web.json_response(rejected.body, status=rejected.status)


class Emulator:
    """The emulator's state and request handlers; `app()` builds the aiohttp application."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.quotas = QuotaBook(config.limits, config.model_limits, config.project_limits)
        self.stats = _Stats()
        self.random = random.Random(config.seed)
        self.files = FileStore(config.file_ttl_seconds, config.video_processing_seconds)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2 * 1024**3 + 1024, middlewares=[_answer_rejections])
        app.router.add_post("/{version}/models/{target}", self.handle_model_call)
        app.router.add_get("/{version}/models/{model}", self.handle_get_model)
        app.router.add_post("/upload/{version}/files", self.handle_upload)
        app.router.add_get("/{version}/files/{file_id}", self.handle_get_file)
        app.router.add_delete("/{version}/files/{file_id}", self.handle_delete_file)
        app.router.add_post("/_emulator/expire_files", self.handle_expire_files)
        app.router.add_get("/_emulator/stats", self.handle_stats)
        app.router.add_post("/_emulator/reset", self.handle_reset)
        app.router.add_post("/_emulator/config", self.handle_config)
        return app

    # -- the Gemini API -----------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> tuple[str, str]:
        secret = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not secret:
            raise _Rejected(403, payloads.unregistered_caller(), "403")
        project = self.config.keys.get(secret)
        if project is None and self.config.any_key:
            project = key_id(secret)
        if project is None:
            raise _Rejected(400, payloads.api_key_invalid(), "key_invalid", key_id(secret))
        return key_id(secret), project

    async def handle_get_model(self, request: web.Request) -> web.Response:
        version, model = request.match_info["version"], request.match_info["model"]
        self._authenticate(request)
        if version not in API_VERSIONS or not model.startswith("gemini-"):
            return web.json_response(payloads.model_not_found(model, version, "get"), status=404)
        return web.json_response(
            {
                "name": f"models/{model}",
                "version": "001",
                "displayName": model,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": list(METHODS),
            }
        )

    async def handle_model_call(self, request: web.Request) -> web.Response:
        started = time.time()
        version = request.match_info["version"]
        model, _, method = request.match_info["target"].partition(":")
        key, project, digest = None, None, None
        # Calls that outlive a reset (hung ones) count in the statistics they started under.
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if version not in API_VERSIONS or method not in METHODS:
                raise _Rejected(404, payloads.error(404, "NOT_FOUND", "Not Found"), "404")
            key, project = self._authenticate(request)
            if not model.startswith("gemini-"):
                raise _Rejected(404, payloads.model_not_found(model, version, method), "404")
            if request.content_length and request.content_length > self.config.request_limit_bytes:
                raise _Rejected(
                    400, payloads.payload_too_large(self.config.request_limit_bytes), "400"
                )
            body = await self._json_body(request)
            if method == "countTokens":
                body = body.get("generateContentRequest", body)
            contents = self._validate_contents(body)
            self._check_files(contents, project)
            digest = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()
            if method == "countTokens":
                tokens = self._count_tokens(contents)
                stats.record("ok", key, project, model, digest, started)
                return web.json_response(
                    {
                        "totalTokens": tokens,
                        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens}],
                    }
                )
            config = self._validate_generation_config(body.get("generationConfig") or {})
            tokens = self._count_tokens(contents)
            violation = self.quotas.admit(project, model, tokens, time.time())
            if violation:
                raise _Rejected(
                    429,
                    payloads.quota_exceeded(
                        violation.quota_id,
                        violation.metric,
                        model,
                        violation.limit,
                        violation.retry_seconds,
                    ),
                    "429",
                )
            await self._inject_faults()
            response = payloads.generate_response(
                model, contents, config, uuid.uuid4().hex[:22], self._file_digest
            )
            if body.get("systemInstruction"):
                # Echo the system instruction too, so a test can see that it arrived.
                parts = body["systemInstruction"].get("parts", [])
                text = " ".join(str(p.get("text", "")) for p in parts)
                for candidate in response["candidates"]:
                    candidate["content"]["parts"][0]["text"] += f" [system: {text}]"
            stats.record("ok", key, project, model, digest, started)
            return web.json_response(response)
        except _Rejected as rejected:
            key = key or rejected.key
            stats.record(rejected.outcome, key, project, model, digest, started)
            return web.json_response(rejected.body, status=rejected.status)
        finally:
            stats.in_flight -= 1

    def _count_tokens(self, contents: list[dict]) -> int:
        return sum(
            payloads.describe_part(p, self._file_digest)[1] for c in contents for p in c["parts"]
        )

    def _file_digest(self, uri: str) -> str | None:
        """The content hash of an uploaded file's URI (None for URIs of other hosts)."""
        _, marker, file_id = uri.rpartition("/files/")
        stored = self.files.files.get(file_id) if marker else None
        return stored.sha256[:16] if stored else None

    def _check_files(self, contents: list[dict], project: str) -> None:
        """Uploaded files must exist, be the caller's project's, and be ACTIVE."""
        now = time.time()
        for content in contents:
            for part in content["parts"]:
                uri = str(part.get("fileData", {}).get("fileUri", ""))
                _, marker, file_id = uri.rpartition("/files/")
                if not marker or "/v1" not in uri:
                    continue  # a URI Gemini fetches itself, such as a YouTube link
                stored = self.files.get(file_id, project)
                if stored is None:
                    raise _Rejected(403, payloads.file_not_found(file_id), "403")
                if stored.state(now) != "ACTIVE":
                    raise _Rejected(400, payloads.file_not_active(file_id), "400")

    # -- the Files API ------------------------------------------------------------------

    async def handle_upload(self, request: web.Request) -> web.Response:
        upload_id = request.query.get("upload_id")
        if upload_id is None:
            return await self._start_upload(request)
        upload = self.files.pending.get(upload_id)
        if upload is None:
            body = payloads.error(404, "NOT_FOUND", "Upload not found.")
            return web.json_response(body, status=404, headers={"x-goog-upload-status": "final"})
        command = request.headers.get("X-Goog-Upload-Command", "")
        offset = int(request.headers.get("X-Goog-Upload-Offset", "0"))
        if offset != len(upload.data):
            body = payloads.invalid_argument(f"Invalid upload offset {offset}.")
            return web.json_response(body, status=400, headers={"x-goog-upload-status": "final"})
        upload.data.extend(await request.read())
        if "finalize" not in command:
            return web.Response(headers={"x-goog-upload-status": "active"})
        stored = self.files.finish(upload_id)
        self.stats.uploads[stored.project] += 1
        base = f"{request.scheme}://{request.host}"
        return web.json_response(
            {"file": stored.to_json(base, request.match_info["version"], time.time())},
            headers={"x-goog-upload-status": "final"},
        )

    async def _start_upload(self, request: web.Request) -> web.Response:
        _, project = self._authenticate(request)
        if request.headers.get("X-Goog-Upload-Command") != "start":
            body = payloads.invalid_argument("Expected X-Goog-Upload-Command: start.")
            return web.json_response(body, status=400)
        meta = (await self._json_body(request)).get("file") or {}
        upload_id = self.files.start(
            project,
            request.headers.get("X-Goog-Upload-Header-Content-Type")
            or meta.get("mimeType", "application/octet-stream"),
            int(request.headers.get("X-Goog-Upload-Header-Content-Length", "0")),
            meta.get("displayName"),
        )
        url = f"{request.scheme}://{request.host}{request.path}?upload_id={upload_id}"
        return web.json_response(
            {}, headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"}
        )

    async def handle_get_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        _, project = self._authenticate(request)
        stored = self.files.get(file_id, project)
        if stored is None:
            return web.json_response(payloads.file_not_found(file_id), status=403)
        base = f"{request.scheme}://{request.host}"
        return web.json_response(stored.to_json(base, request.match_info["version"], time.time()))

    async def handle_delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        _, project = self._authenticate(request)
        if not self.files.delete(file_id, project):
            return web.json_response(payloads.file_not_found(file_id), status=403)
        return web.json_response({})

    async def handle_expire_files(self, request: web.Request) -> web.Response:
        """Expire every uploaded file now, as 48 hours would."""
        return web.json_response({"expired": self.files.expire_all()})

    async def _json_body(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Rejected(
                400,
                payloads.invalid_argument("Invalid JSON payload received. Unexpected token."),
                "400",
            ) from None
        body = _camel_case(body)
        if not isinstance(body, dict):
            raise _Rejected(
                400,
                payloads.invalid_argument("Invalid JSON payload received. Expected an object."),
                "400",
            )
        return body

    def _validate_contents(self, body: dict) -> list[dict]:
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise _Rejected(
                400,
                payloads.invalid_argument(
                    "* GenerateContentRequest.contents: contents is not specified\n"
                ),
                "400",
            )
        for i, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise _Rejected(
                    400,
                    payloads.invalid_argument(
                        f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not "
                        "be empty.\n"
                    ),
                    "400",
                )
            for j, part in enumerate(parts):
                data = part.get("inlineData", {}).get("data") if isinstance(part, dict) else None
                if data is not None:
                    try:
                        payloads.decode_bytes(str(data))
                    except ValueError:
                        raise _Rejected(
                            400,
                            payloads.invalid_argument(
                                f"Invalid value at 'contents[{i}].parts[{j}].inline_data.data' "
                                "(TYPE_BYTES), Base64 decoding failed"
                            ),
                            "400",
                        ) from None
                if not isinstance(part, dict) or not (
                    {"text", "inlineData", "fileData"} & set(part)
                ):
                    raise _Rejected(
                        400,
                        payloads.invalid_argument(
                            f"* GenerateContentRequest.contents[{i}].parts[{j}].data: "
                            "required oneof field 'data' must have one initialized field\n"
                        ),
                        "400",
                    )
        return contents

    def _validate_generation_config(self, config: dict) -> dict:
        temperature = config.get("temperature")
        if temperature is not None and not 0 <= float(temperature) <= 2:
            raise _Rejected(
                400,
                payloads.invalid_argument(
                    "* GenerateContentRequest.generation_config.temperature: temperature must be "
                    "in the range [0.0, 2.0]\n"
                ),
                "400",
            )
        count = config.get("candidateCount")
        if count is not None and not 1 <= int(count) <= MAX_CANDIDATES:
            raise _Rejected(
                400,
                payloads.invalid_argument(
                    "* GenerateContentRequest.generation_config.candidate_count: candidate_count "
                    f"must be in the range [1, {MAX_CANDIDATES}]\n"
                ),
                "400",
            )
        max_tokens = config.get("maxOutputTokens")
        if max_tokens is not None and int(max_tokens) < 1:
            raise _Rejected(
                400,
                payloads.invalid_argument(
                    "* GenerateContentRequest.generation_config.max_output_tokens: must be "
                    "positive\n"
                ),
                "400",
            )
        return config

    async def _inject_faults(self) -> None:
        faults = self.config.faults
        delay = faults.latency + self.random.uniform(0, faults.latency_jitter)
        if delay > 0:
            await asyncio.sleep(delay)
        roll = self.random.random()
        if roll < faults.hang_rate:
            await asyncio.sleep(faults.hang_seconds)
            raise _Rejected(
                504,
                payloads.error(
                    504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."
                ),
                "hang",
            )
        roll -= faults.hang_rate
        if roll < faults.error_500_rate:
            raise _Rejected(500, payloads.internal(), "500")
        roll -= faults.error_500_rate
        if roll < faults.error_503_rate:
            raise _Rejected(503, payloads.overloaded(), "503")

    # -- the emulator's own endpoints ---------------------------------------------------

    async def handle_stats(self, request: web.Request) -> web.Response:
        with_calls = request.query.get("calls") in ("1", "true")
        return web.json_response(self.stats.to_json(with_calls, len(self.files.files)))

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.stats = _Stats()
        self.files.expire_all()
        self.quotas.reset()
        return web.json_response({"ok": True})

    async def handle_config(self, request: web.Request) -> web.Response:
        """Change keys, limits or faults while running: tests use it between scenarios."""
        update = await request.json()
        if "keys" in update:
            self.config.keys.update(update["keys"])
        if "faults" in update:
            self.config.faults = Faults(**{**asdict(self.config.faults), **update["faults"]})
        if "request_limit_bytes" in update:
            self.config.request_limit_bytes = int(update["request_limit_bytes"])
        if "video_processing_seconds" in update:
            self.files.video_processing_seconds = float(update["video_processing_seconds"])
        if "limits" in update:
            self.config.limits = Limits(**update["limits"])
            self.quotas.default = self.config.limits
        if "model_limits" in update:
            self.config.model_limits = {m: Limits(**v) for m, v in update["model_limits"].items()}
            self.quotas.per_model = self.config.model_limits
        if "project_limits" in update:
            self.config.project_limits = {
                p: Limits(**v) for p, v in update["project_limits"].items()
            }
            self.quotas.per_project = self.config.project_limits
        return web.json_response(
            {
                "faults": asdict(self.config.faults),
                "limits": asdict(self.config.limits),
                "projects": sorted(set(self.config.keys.values())),
            }
        )


def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Run the emulator until interrupted."""
    emulator = Emulator(config)
    print(f"Gemini API emulator listening on http://{host}:{port}", flush=True)
    # Hung calls are deliberate: do not wait for them when asked to stop.
    web.run_app(
        emulator.app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=1
    )
