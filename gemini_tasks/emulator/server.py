"""An aiohttp server that answers the Gemini REST API the way Google's does.

The SDK is pointed at it with `GOOGLE_GEMINI_BASE_URL` (or `HttpOptions.base_url`). It
knows a set of keys, each in a project, enforces per-project, per-model quotas, plays the
faults its rules describe, and keeps statistics under `/_emulator/`, a path Gemini does not
use.

Gemini's endpoints: `models/{model}:generateContent`, `:countTokens` and
`:batchGenerateContent`, `GET models/{model}`; the Files API (`POST /upload/{version}/files`,
`GET` and `DELETE files/{id}`; emulator/files.py); Batch Mode (`GET batches`, `GET`, `DELETE`
and `POST :cancel` on `batches/{id}`; emulator/batches.py); explicit context caching
(`POST` and `GET cachedContents`, `GET`, `PATCH` and `DELETE cachedContents/{id}`;
emulator/caches.py), with `cachedContent` honoured by generateContent and batch requests.
The emulator's own: `GET /_emulator/stats`, `POST /_emulator/reset`, `/_emulator/config`,
`/_emulator/release`, `/_emulator/finish_batches` (every unfinished batch due now),
`/_emulator/expire_files` and `/_emulator/expire_caches` (every file
or cache expires now, as its TTL would have it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gemini_tasks.emulator import answers, caches, payloads
from gemini_tasks.emulator.batches import Batch, BatchStore
from gemini_tasks.emulator.caches import Cache, CacheStore
from gemini_tasks.emulator.config import EmulatorConfig, apply
from gemini_tasks.emulator.files import MAX_FILE_BYTES, FileStore
from gemini_tasks.emulator.quotas import QuotaBook
from gemini_tasks.emulator.rules import TERMINAL, Call, Rule
from gemini_tasks.emulator.stats import Stats
from gemini_tasks.emulator.validate import (
    Rejected,
    camel_case,
    validate_contents,
    validate_generation_config,
    validate_request_fields,
    validate_service_tier,
)
from gemini_tasks.keys import key_id

log = logging.getLogger(__name__)

API_VERSIONS = ("v1", "v1beta", "v1alpha")
BATCH = "batchGenerateContent"
_FILE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
# HTTP status -> google.rpc.Code (google/rpc/code.proto).
RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 501: 12,
             502: 14, 503: 14, 504: 4}  # fmt: skip
METHODS = ("generateContent", "countTokens", BATCH)
Body = dict[str, Any]
# A cache endpoint's answer, the outcome the statistics count (None: nothing to count) and
# the model of the cache it touched.
CacheAnswer = tuple[web.Response, str | None, str]
CacheAction = Callable[[web.Request, str], Awaitable[CacheAnswer]]


@web.middleware
async def _answer_rejections(request: web.Request, handler: Any) -> web.StreamResponse:
    """A request the emulator refuses gets Gemini's error body and status."""
    try:
        response: web.StreamResponse = await handler(request)
    except Rejected as rejected:
        return rejected.response()
    return response


def _project_number(project: str) -> str:
    return str(int(hashlib.sha256(project.encode()).hexdigest()[:10], 16))


class Emulator:
    """The emulator's state and request handlers; `app()` builds the aiohttp application."""

    def __init__(self, config: EmulatorConfig):
        self.config = config
        self.quotas = QuotaBook(config.limits)
        self.stats = Stats()
        self.random = random.Random(config.seed)
        self.files = FileStore(
            config.file_ttl_seconds, config.video_processing_seconds, config.storage_bytes
        )
        self.batches = BatchStore()
        self.caches = CacheStore()
        self.attempts: dict[str, int] = {}
        self.rules_since = time.time()
        self.release = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2 * 1024**3 + 1024, middlewares=[_answer_rejections])
        app.router.add_post("/{version}/models/{target}", self.handle_model_call)
        app.router.add_get("/{version}/models/{model}", self.handle_get_model)
        app.router.add_post("/upload/{version}/files", self.handle_upload)
        app.router.add_get("/{version}/files/{file_id}", self.handle_get_file)
        app.router.add_delete("/{version}/files/{file_id}", self.handle_delete_file)
        app.router.add_get("/{version}/batches", self.handle_list_batches)
        app.router.add_get("/{version}/batches/{batch_id}", self.handle_get_batch)
        app.router.add_post("/{version}/batches/{batch_id}", self.handle_cancel_batch)
        app.router.add_delete("/{version}/batches/{batch_id}", self.handle_delete_batch)
        app.router.add_post("/{version}/cachedContents", self.handle_create_cache)
        app.router.add_get("/{version}/cachedContents", self.handle_list_caches)
        app.router.add_get("/{version}/cachedContents/{cache_id}", self.handle_get_cache)
        app.router.add_patch("/{version}/cachedContents/{cache_id}", self.handle_update_cache)
        app.router.add_delete("/{version}/cachedContents/{cache_id}", self.handle_delete_cache)
        app.router.add_post("/_emulator/expire_files", self.handle_expire_files)
        app.router.add_post("/_emulator/expire_caches", self.handle_expire_caches)
        app.router.add_post("/_emulator/finish_batches", self.handle_finish_batches)
        app.router.add_get("/_emulator/stats", self.handle_stats)
        app.router.add_post("/_emulator/reset", self.handle_reset)
        app.router.add_post("/_emulator/config", self.handle_config)
        app.router.add_post("/_emulator/release", self.handle_release)
        return app

    # -- who is calling -----------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> tuple[str, str]:
        """The caller's key id and project, or the rejection Gemini sends."""
        secret = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not secret:
            raise Rejected(403, payloads.unregistered_caller(), "403")
        project = self.config.keys.get(secret)
        if project is None and self.config.any_key:
            project = key_id(secret)
        if project is None:
            raise Rejected(400, payloads.api_key_invalid(), "key_invalid", key_id(secret))
        reason = self.config.revoked.get(secret) or self.config.revoked.get(key_id(secret))
        if reason:
            body = payloads.key_revoked(reason, secret, _project_number(project))
            raise Rejected(403, body, f"key_{reason}", key_id(secret))
        return key_id(secret), project

    def _file_data(self, uri: str) -> bytes | None:
        """An uploaded file's bytes, for describing it: still stored, or held by a cache."""
        _, marker, file_id = uri.rpartition("/files/")
        if not marker:
            return None
        data = self.files.data_of(file_id)
        return data if data is not None else self.caches.file_data(file_id)

    def _check_files(self, contents: list[Body], project: str) -> None:
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
                    raise Rejected(403, payloads.file_not_found(file_id), "403")
                if stored.state(now) != "ACTIVE":
                    raise Rejected(400, payloads.file_not_active(file_id), "400")

    # -- generateContent and countTokens ------------------------------------------------

    async def handle_get_model(self, request: web.Request) -> web.Response:
        version, model = request.match_info["version"], request.match_info["model"]
        self._authenticate(request)
        if version not in API_VERSIONS or not _known_model(model):
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

    async def handle_model_call(self, request: web.Request) -> web.StreamResponse:
        started = time.time()
        # Calls that outlive a reset (hung ones) count in the statistics they started under.
        stats = self.stats
        stats.started()
        call: Call | None = None
        key = project = None
        model, _, method = request.match_info["target"].partition(":")
        try:
            key, project = self._route(request, model, method)
            body = await _json_body(request)
            if method == BATCH:
                created = self._create_batch(body, model, project, key)
                stats.record("batch_create", key, project, model, None, started)
                return web.json_response(created.to_json())
            if method == "countTokens":
                contents = validate_contents(body.get("generateContentRequest", body))
                tokens = answers.prompt_tokens(contents, self._file_data)
                # Its own outcome: countTokens is free and spends no generation quota
                # (ai.google.dev/api/tokens), so it is no generation call in the figures.
                stats.record("count", key, project, model, None, started)
                return web.json_response({"totalTokens": tokens})
            call, contents, config = self._prepare(body, model, project, key)
            response = await self._generate(call, contents, config)
            stats.record(response[1], key, project, model, call.digest, started, call.attempt,
                         call.tier, call.cache)  # fmt: skip
            # Gemini says which tier served a call (ai.google.dev/gemini-api/docs/
            # priority-inference; reported for flex too, discuss.ai.google.dev/t/143223).
            response[0].headers["x-gemini-service-tier"] = call.tier
            return response[0]
        except Rejected as rejected:
            digest, attempt = (call.digest, call.attempt) if call else (None, 0)
            outcome_key = key or rejected.key
            tier, cache = (call.tier, call.cache) if call else (None, None)
            stats.record(rejected.outcome, outcome_key, project, model, digest, started, attempt,
                         tier, cache)  # fmt: skip
            return rejected.response()
        finally:
            stats.in_flight -= 1

    def _route(self, request: web.Request, model: str, method: str) -> tuple[str, str]:
        version = request.match_info["version"]
        if version not in API_VERSIONS or method not in METHODS:
            raise Rejected(404, payloads.error(404, "NOT_FOUND", "Not Found"), "404")
        key, project = self._authenticate(request)
        if not _known_model(model):
            raise Rejected(404, payloads.model_not_found(model, version, method), "404")
        if request.content_length and request.content_length > self.config.request_limit_bytes:
            body = payloads.payload_too_large(self.config.request_limit_bytes)
            raise Rejected(400, body, "400")
        return key, project

    def _prepare(
        self, body: Body, model: str, project: str, key: str
    ) -> tuple[Call, list[Body], Body]:
        validate_request_fields(body)
        contents = validate_contents(body)
        config = validate_generation_config(body.get("generationConfig") or {})
        self._check_files(contents, project)
        tier = validate_service_tier(body.get("serviceTier"))
        cache = self._cache_named(body, model, project)
        # A request naming a cache is the same request with the cache's contents ahead of its
        # own and the cache's system instruction: its answer, tokens and quota are those of
        # the request sent whole (ai.google.dev/gemini-api/docs/caching).
        if cache is not None:
            contents = cache.contents + contents
        system = answers.system_text(cache.system_instruction if cache else
                                     body.get("systemInstruction"))  # fmt: skip
        digest = hashlib.sha256(json.dumps(contents, sort_keys=True).encode()).hexdigest()
        attempt = self.attempts[digest] = self.attempts.get(digest, 0) + 1
        text = " ".join(str(p.get("text", "")) for c in contents for p in c["parts"])
        elapsed = time.time() - self.rules_since
        call = Call(model, project, key, text, digest, attempt, elapsed, tier, system,
                    cache.name if cache else None, cache.tokens if cache else 0)  # fmt: skip
        return call, contents, config

    def _cache_named(self, body: Body, model: str, project: str) -> Cache | None:
        """The live cache of the caller's project that the request names, if it names one."""
        name = body.get("cachedContent")
        if name is None:
            return None
        cache = self.caches.get(caches.cache_id(str(name)), project)
        if cache is None:
            raise Rejected(403, payloads.cache_not_found(), "cache_missing")
        if cache.model != model:
            raise Rejected(400, payloads.cache_model_mismatch(model, cache.model), "400")
        if any(body.get(f) is not None for f in ("systemInstruction", "tools", "toolConfig")):
            raise Rejected(400, payloads.cache_conflict(), "400")
        return cache

    async def _generate(
        self, call: Call, contents: list[Body], config: Body
    ) -> tuple[web.StreamResponse, str]:
        tokens = answers.prompt_tokens(contents, self._file_data, call.system)
        violations = self.quotas.admit(call.project, call.model, tokens, time.time())
        if violations:
            raise Rejected(429, payloads.quota_exceeded(violations), "429")
        rule = await self._play_rules(call)
        response_id = uuid.uuid4().hex[:22]
        if rule is not None and rule.answer == "hang":
            await asyncio.sleep(rule.seconds)
            raise Rejected(504, payloads.deadline_exceeded(), "hang")
        if rule is not None and rule.answer != "malformed_json":
            return self._answer_rule(rule, call, tokens, response_id)
        malformed = rule is not None and rule.answer == "malformed_json"
        answer = answers.echo(call.model, contents, config, response_id, self._file_data,
                              self.config.thoughts_tokens, call.system, malformed,
                              call.cached_tokens)  # fmt: skip
        return web.json_response(answer), "malformed_json" if malformed else "ok"

    async def _play_rules(self, call: Call) -> Rule | None:
        """Latency and the rules that delay or hold the call; the first terminal rule that
        hits it, if any."""
        delay = self.config.latency + self.random.uniform(0, self.config.latency_jitter)
        if delay > 0:
            await asyncio.sleep(delay)
        for rule in list(self.config.rules):
            if not rule.matches(call):
                continue
            rule.hits += 1
            if rule.answer == "delay":
                await asyncio.sleep(rule.seconds)
            elif rule.answer == "hold":
                await self._hold()
            elif rule.answer in TERMINAL:
                return rule
        return None

    async def _hold(self) -> None:
        self.stats.held += 1
        try:
            await self.release.wait()
        finally:
            self.stats.held -= 1

    def _answer_rule(
        self, rule: Rule, call: Call, tokens: int, response_id: str
    ) -> tuple[web.StreamResponse, str]:
        errors = {
            "500": (500, payloads.internal()),
            "503": (503, payloads.overloaded()),
            "504": (504, payloads.deadline_exceeded()),
            "499": (499, payloads.cancelled()),
            "429_capacity": (429, payloads.capacity_exhausted()),
            "429_help": (429, payloads.capacity_help_only()),
        }
        if rule.answer in errors:
            status, body = errors[rule.answer]
            raise Rejected(status, body, rule.answer)
        if rule.answer == "502":
            page = web.Response(
                text=payloads.BAD_GATEWAY_PAGE, status=502, content_type="text/html"
            )
            return page, "502"
        body = answers.without_text(rule.answer, rule.reason, call.model, tokens, response_id,
                                    call.cached_tokens)  # fmt: skip
        return web.json_response(body), rule.answer

    # -- Batch Mode (emulator/batches.py) ----------------------------------------------

    def _create_batch(self, body: Body, model: str, project: str, key: str) -> Batch:
        spec = body.get("batch")
        if not isinstance(spec, dict):
            raise Rejected(400, payloads.invalid_argument("batch is required."), "400")
        source = spec.get("inputConfig") or {}
        input_file = source.get("fileName")
        if input_file:
            requests = self._batch_file(str(input_file), project)
        else:
            requests = (source.get("requests") or {}).get("requests") or []
        if not isinstance(requests, list) or not requests:
            message = "* BatchGenerateContentRequest.batch.input_config: requests are required"
            raise Rejected(400, payloads.invalid_argument(message), "400")
        self._advance_batches(project)
        if self.batches.unfinished(project) >= self.config.batch_concurrent:
            raise Rejected(429, payloads.batch_limit(self.config.batch_concurrent), "429")
        tokens = sum(self._request_tokens(item.get("request")) for item in requests
                     if isinstance(item, dict))  # fmt: skip
        if self.batches.enqueued(project, model) + tokens > self.config.batch_tokens:
            raise Rejected(429, payloads.batch_tokens_limit(self.config.batch_tokens, model),
                           "429")  # fmt: skip
        now = time.time()
        return self.batches.add({
            "project": project, "model": model, "key_id": key,
            "display_name": str(spec.get("displayName") or ""), "requests": requests,
            "input_file": input_file, "created": now, "done_at": now + self.config.batch_seconds,
            "expires_at": now + self.config.batch_expire_seconds,
            "fails": self.config.batch_fails, "tokens": tokens,
        })  # fmt: skip

    def _request_tokens(self, request: Any) -> int:
        """A batch request's input tokens, as its call would count them."""
        request = camel_case(request) if isinstance(request, dict) else {}
        contents = request.get("contents")
        if not isinstance(contents, list):
            return 0
        contents = [c for c in contents if isinstance(c, dict)]
        system = answers.system_text(request.get("systemInstruction"))
        return answers.prompt_tokens(contents, self._file_data, system)

    def _batch_file(self, name: str, project: str) -> list[Body]:
        """The requests of an uploaded JSONL file: one `{"key", "request"}` object a line."""
        file_id = name.rpartition("/")[2]
        stored = self.files.get(file_id, project)
        if stored is None:
            raise Rejected(403, payloads.file_not_found(file_id), "403")
        requests = []
        for n, line in enumerate(stored.data.decode("utf-8", "replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = camel_case(json.loads(line))
            except json.JSONDecodeError:
                item = None
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                message = f"Invalid JSON on line {n} of {name}: expected {{key, request}}."
                raise Rejected(400, payloads.invalid_argument(message), "400")
            requests.append(item)
        return requests

    def _advance_batches(self, project: str) -> None:
        now = time.time()
        for batch in self.batches.of(project):
            batch.advance(now, self._answer_batch)

    def _answer_batch(self, batch: Batch) -> None:
        """Answer every request of a batch, each as generateContent would, on the batch tier
        and outside the interactive quota (Batch Mode has its own limits)."""
        for item in batch.requests:
            answer, outcome, cache = self._answer_item(batch, item["request"])
            tag = {"key": item["key"]} if "key" in item else {"metadata": item.get("metadata")}
            batch.outputs.append({**answer, **tag})
            self.stats.record(outcome, batch.key_id, batch.project, batch.model, None,
                              time.time(), tier="batch", cache=cache)  # fmt: skip
        if batch.input_file:
            lines = "".join(json.dumps(o) + "\n" for o in batch.outputs)
            stored = self.files.add(batch.project, "application/jsonl", lines.encode(),
                                    f"{batch.name} responses")  # fmt: skip
            batch.output_file = f"files/{stored.id}"

    def _answer_item(self, batch: Batch, request: Body) -> tuple[Body, str, str | None]:
        """A batch request's answer or error, its outcome, and the cache it named, if any (a
        request naming a cache is answered as generateContent answers it)."""
        call: Call | None = None
        try:
            call, contents, config = self._prepare(request, batch.model, batch.project,
                                                   batch.key_id)  # fmt: skip
            call = dataclasses.replace(call, tier="batch")
            rule = next((r for r in self.config.rules if r.answer in TERMINAL
                         and r.matches(call)), None)  # fmt: skip
            tokens = answers.prompt_tokens(contents, self._file_data, call.system)
            response_id = uuid.uuid4().hex[:22]
            if rule is not None:
                rule.hits += 1
                if rule.answer in ("hang", "502"):  # what a batch reports for a lost call
                    raise Rejected(504, payloads.deadline_exceeded(), rule.answer)
                if rule.answer != "malformed_json":
                    response, outcome = self._answer_rule(rule, call, tokens, response_id)
                    body = json.loads(getattr(response, "text", "{}"))
                    return {"response": body}, outcome, call.cache
            answer = answers.echo(call.model, contents, config, response_id, self._file_data,
                                  self.config.thoughts_tokens, call.system,
                                  cached=call.cached_tokens)  # fmt: skip
            return {"response": answer}, "ok", call.cache
        except Rejected as rejected:
            # A batch reports each request's error as a google.rpc.Status, its code gRPC's
            # (ai.google.dev/api/batch-mode: InlinedResponse.error).
            error = rejected.body["error"]
            status = {"code": RPC_CODES.get(rejected.status, 13), "message": error["message"]}
            return {"error": status}, rejected.outcome, call.cache if call else None

    def _batch_of(self, request: web.Request) -> tuple[Batch | None, str, str]:
        _, project = self._authenticate(request)
        batch_id, _, action = request.match_info["batch_id"].partition(":")
        self._advance_batches(project)
        return self.batches.get(batch_id, project), batch_id, action

    async def handle_get_batch(self, request: web.Request) -> web.Response:
        batch, batch_id, _ = self._batch_of(request)
        if batch is None:
            return web.json_response(payloads.batch_not_found(batch_id), status=404)
        return web.json_response(batch.to_json())

    async def handle_cancel_batch(self, request: web.Request) -> web.Response:
        batch, batch_id, action = self._batch_of(request)
        if action != "cancel":
            return web.json_response(payloads.error(404, "NOT_FOUND", "Not Found"), status=404)
        if batch is None:
            return web.json_response(payloads.batch_not_found(batch_id), status=404)
        batch.cancel(time.time())
        return web.json_response({})

    async def handle_delete_batch(self, request: web.Request) -> web.Response:
        _, project = self._authenticate(request)
        batch_id = request.match_info["batch_id"]
        if not self.batches.delete(batch_id, project):
            return web.json_response(payloads.batch_not_found(batch_id), status=404)
        return web.json_response({})

    async def handle_list_batches(self, request: web.Request) -> web.Response:
        _, project = self._authenticate(request)
        self._advance_batches(project)
        return web.json_response({"operations": [b.to_json() for b in self.batches.of(project)]})

    # -- explicit context caching (emulator/caches.py) ----------------------------------

    async def _cache_endpoint(self, request: web.Request, action: CacheAction) -> web.Response:
        """Answer one cache endpoint; the statistics count what it did (its outcome, if it
        names one) or why it was refused."""
        started = time.time()
        key = project = None
        try:
            if request.match_info["version"] not in API_VERSIONS:
                raise Rejected(404, payloads.error(404, "NOT_FOUND", "Not Found"), "404")
            key, project = self._authenticate(request)
            response, outcome, model = await action(request, project)
        except Rejected as rejected:
            self.stats.record(rejected.outcome, key or rejected.key, project, "", None, started)
            return rejected.response()
        if outcome is not None:
            self.stats.record(outcome, key, project, model, None, started)
        return response

    def _own_cache(self, request: web.Request, project: str) -> Cache:
        cache = self.caches.get(request.match_info["cache_id"], project)
        if cache is None:
            raise Rejected(403, payloads.cache_not_found(), "cache_missing")
        return cache

    async def handle_create_cache(self, request: web.Request) -> web.Response:
        return await self._cache_endpoint(request, self._create_cache)

    async def handle_get_cache(self, request: web.Request) -> web.Response:
        async def get(request: web.Request, project: str) -> CacheAnswer:
            return web.json_response(self._own_cache(request, project).to_json()), None, ""

        return await self._cache_endpoint(request, get)

    async def handle_list_caches(self, request: web.Request) -> web.Response:
        async def listing(request: web.Request, project: str) -> CacheAnswer:
            query = request.query
            body = caches.page(self.caches.live(project), query.get("pageSize"),
                               query.get("pageToken"))  # fmt: skip
            return web.json_response(body), None, ""

        return await self._cache_endpoint(request, listing)

    async def handle_update_cache(self, request: web.Request) -> web.Response:
        """Only a cache's expiry can change (ai.google.dev/api/caching: cachedContents.patch
        takes a new ttl or expireTime)."""

        async def update(request: web.Request, project: str) -> CacheAnswer:
            cache = self._own_cache(request, project)
            now = time.time()
            expires = caches.expiry(await _json_body(request), now)
            if expires is None:
                message = "* UpdateCachedContentRequest: ttl or expire_time is required.\n"
                raise Rejected(400, payloads.invalid_argument(message), "400")
            cache.expires, cache.updated = expires, now
            return web.json_response(cache.to_json()), "cache_update", cache.model

        return await self._cache_endpoint(request, update)

    async def handle_delete_cache(self, request: web.Request) -> web.Response:
        async def delete(request: web.Request, project: str) -> CacheAnswer:
            cache = self._own_cache(request, project)
            self.caches.delete(cache.id, project)
            return web.json_response({}), "cache_delete", cache.model

        return await self._cache_endpoint(request, delete)

    async def _create_cache(self, request: web.Request, project: str) -> CacheAnswer:
        """A new cache of the caller's project: its contents checked as generateContent checks
        them, counted as Gemini counts a prompt, and refused under the model's minimum."""
        body = await _json_body(request)
        model = str(body.get("model") or "").removeprefix("models/")
        if not model:
            message = "* CreateCachedContentRequest.cached_content.model: model is required\n"
            raise Rejected(400, payloads.invalid_argument(message), "400")
        if not _known_model(model):
            body_404 = payloads.model_not_found(model, request.match_info["version"],
                                                "createCachedContent")  # fmt: skip
            raise Rejected(404, body_404, "404")
        unknown = sorted(set(body) - caches.CREATE_FIELDS)
        if unknown:
            raise Rejected(400, payloads.unknown_fields(unknown), "400")
        contents = validate_contents(body) if body.get("contents") is not None else []
        self._check_files(contents, project)
        instruction = body.get("systemInstruction")
        # Tools are not counted: the emulator's count is the contents and system instruction.
        tokens = answers.prompt_tokens(contents, self._file_data, answers.system_text(instruction))
        minimum = self.config.cache_min_tokens
        minimum = caches.min_tokens(model) if minimum is None else minimum
        if tokens < minimum:
            raise Rejected(400, payloads.cache_too_small(tokens, minimum), "cache_too_small")
        now = time.time()
        expires = caches.expiry(body, now) or now + caches.DEFAULT_TTL_SECONDS
        cache = self.caches.add({
            "project": project, "model": model,
            "display_name": str(body.get("displayName") or ""), "contents": contents,
            "system_instruction": instruction, "tools": body.get("tools"),
            "tool_config": body.get("toolConfig"), "tokens": tokens, "created": now,
            "updated": now, "expires": expires, "files": self._files_held(contents),
        })  # fmt: skip
        return web.json_response(cache.to_json()), "cache_create", model

    def _files_held(self, contents: list[Body]) -> dict[str, bytes]:
        """The bytes of the uploaded files `contents` refer to, by file id."""
        held = {}
        for content in contents:
            for part in content["parts"]:
                uri = str(part.get("fileData", {}).get("fileUri", ""))
                _, marker, file_id = uri.rpartition("/files/")
                data = self.files.data_of(file_id) if marker else None
                if data is not None:
                    held[file_id] = data
        return held

    # -- the Files API ------------------------------------------------------------------

    async def handle_upload(self, request: web.Request) -> web.Response:
        upload_id = request.query.get("upload_id")
        if upload_id is None:
            return await self._start_upload(request)
        upload = self.files.pending.get(upload_id)
        final = {"x-goog-upload-status": "final"}
        if upload is None:
            body = payloads.error(404, "NOT_FOUND", "Upload not found.")
            return web.json_response(body, status=404, headers=final)
        command = request.headers.get("X-Goog-Upload-Command", "")
        offset = int(request.headers.get("X-Goog-Upload-Offset", "0"))
        if offset != len(upload.data):
            body = payloads.invalid_argument(f"Invalid upload offset {offset}.")
            return web.json_response(body, status=400, headers=final)
        upload.data.extend(await request.read())
        if "finalize" not in command:
            return web.Response(headers={"x-goog-upload-status": "active"})
        stored = self.files.finish(upload_id)
        self.stats.uploads[stored.project] += 1
        if self.config.hold_uploads:  # stored, its uploader not yet told: a test kills it now
            await self._hold()
        base = f"{request.scheme}://{request.host}"
        file_json = stored.to_json(base, request.match_info["version"], time.time())
        return web.json_response({"file": file_json}, headers=final)

    async def _start_upload(self, request: web.Request) -> web.Response:
        _, project = self._authenticate(request)
        if request.headers.get("X-Goog-Upload-Command") != "start":
            body = payloads.invalid_argument("Expected X-Goog-Upload-Command: start.")
            return web.json_response(body, status=400)
        meta = (await _json_body(request)).get("file") or {}
        size = int(request.headers.get("X-Goog-Upload-Header-Content-Length", "0"))
        if size > MAX_FILE_BYTES:
            return web.json_response(payloads.file_too_large(MAX_FILE_BYTES), status=400)
        if self.files.stored_bytes(project) + size > self.files.storage_limit:
            body = payloads.file_storage_exhausted(self.files.storage_limit)
            return web.json_response(body, status=429)
        # An uploader may name the file: up to 40 lowercase letters, digits and dashes, not
        # at either end; a name in use is refused (ai.google.dev/api/files#File).
        file_id = str(meta.get("name") or "").removeprefix("files/") or None
        if file_id is not None and not _FILE_ID.fullmatch(file_id):
            body = payloads.invalid_argument(f"Invalid file name: files/{file_id}.")
            return web.json_response(body, status=400)
        if file_id is not None and file_id in self.files.files:
            body = payloads.error(409, "ALREADY_EXISTS", f"File files/{file_id} already exists.")
            return web.json_response(body, status=409)
        upload_id = self.files.start(
            project,
            request.headers.get("X-Goog-Upload-Header-Content-Type")
            or meta.get("mimeType", "application/octet-stream"),
            size,
            meta.get("displayName"),
            file_id,
        )
        url = f"{request.scheme}://{request.host}{request.path}?upload_id={upload_id}"
        return web.json_response(
            {}, headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"}
        )

    async def handle_get_file(self, request: web.Request) -> web.Response:
        file_id, _, action = request.match_info["file_id"].partition(":")
        _, project = self._authenticate(request)
        stored = self.files.get(file_id, project)
        if stored is None:
            return web.json_response(payloads.file_not_found(file_id), status=403)
        if action == "download":  # the files Gemini writes, such as a batch's answers
            return web.Response(body=stored.data, content_type=stored.mime_type)
        base = f"{request.scheme}://{request.host}"
        return web.json_response(stored.to_json(base, request.match_info["version"], time.time()))

    async def handle_delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        _, project = self._authenticate(request)
        if not self.files.delete(file_id, project):
            return web.json_response(payloads.file_not_found(file_id), status=403)
        return web.json_response({})

    # -- the emulator's own endpoints ---------------------------------------------------

    async def handle_expire_files(self, request: web.Request) -> web.Response:
        """Expire every uploaded file now, as 48 hours would."""
        return web.json_response({"expired": self.files.expire_all()})

    async def handle_expire_caches(self, request: web.Request) -> web.Response:
        """Expire every context cache now, as its TTL would; Gemini deletes expired caches."""
        return web.json_response({"expired": self.caches.expire_all()})

    async def handle_finish_batches(self, request: web.Request) -> web.Response:
        """Make every unfinished batch due now: a test decides when Gemini answers."""
        return web.json_response({"due": self.batches.due_now(time.time())})

    async def handle_stats(self, request: web.Request) -> web.Response:
        with_calls = request.query.get("calls") in ("1", "true")
        live = [c.summary() for c in self.caches.live()]
        return web.json_response(self.stats.to_json(with_calls, len(self.files.files), live))

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.stats = Stats()
        self.files.expire_all()
        self.batches = BatchStore()
        self.caches = CacheStore()
        self.quotas.reset()
        self.attempts.clear()
        return web.json_response({"ok": True})

    async def handle_release(self, request: web.Request) -> web.Response:
        """Answer every held call; calls held after this wait for the next release."""
        held = self.stats.held
        self.release.set()
        self.release = asyncio.Event()
        return web.json_response({"released": held})

    async def handle_config(self, request: web.Request) -> web.Response:
        """Change keys, limits, revocations, rules or latency while running."""
        update = await request.json()
        try:
            apply(self.config, update)
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.quotas.limits = self.config.limits
        self.quotas.tiers = self.config.tiers
        self.quotas.zero_quota = self.config.zero_quota
        if "rules" in update:
            self.rules_since = time.time()
        if "video_processing_seconds" in update:
            self.files.video_processing_seconds = self.config.video_processing_seconds
        if "storage_bytes" in update:
            self.files.storage_limit = self.config.storage_bytes
        return web.json_response(
            {
                "rules": len(self.config.rules),
                "revoked": sorted(self.config.revoked),
                "projects": sorted(set(self.config.keys.values())),
            }
        )


# The model codes Gemini serves (ai.google.dev/gemini-api/docs/models): families, with
# dated, numbered or preview variants; any other name is a 404 as Gemini gives it.
_MODELS = re.compile(
    r"(gemini-(1\.5|2\.0|2\.5|3|3\.0)-(pro|flash|flash-lite|flash-8b)(-[a-z0-9.-]+)?"
    r"|gemini-(pro|flash|flash-lite)-latest|gemma-[0-9a-z.-]+)"
)


def _known_model(model: str) -> bool:
    return bool(_MODELS.fullmatch(model))


async def _json_body(request: web.Request) -> Body:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        message = "Invalid JSON payload received. Unexpected token."
        raise Rejected(400, payloads.invalid_argument(message), "400") from None
    if not isinstance(body, dict):
        message = "Invalid JSON payload received. Expected an object."
        raise Rejected(400, payloads.invalid_argument(message), "400")
    converted: Body = camel_case(body)
    return converted


def serve(config: EmulatorConfig, host: str, port: int) -> None:
    """Run the emulator until interrupted."""
    emulator = Emulator(config)
    print(f"Gemini API emulator listening on http://{host}:{port}", flush=True)
    # Hung calls are deliberate: do not wait for them when asked to stop.
    web.run_app(
        emulator.app(), host=host, port=port, print=None, access_log=None, shutdown_timeout=1
    )
