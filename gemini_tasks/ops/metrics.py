"""The cluster in Prometheus' text format, for an operator's scraper: the key pool, the
recent jobs (prompts by model and outcome, latencies, waiting and in-flight prompts, 429s,
tokens, cost) and the broker's queues.

`gemini-tasks metrics --port N` serves `/metrics`. Workers and producers record everything
in Redis as they go, and each scrape reads it there at that moment, so one server, on any
machine, shows the whole cluster, and several may run. With Redis away a scrape answers 503
at once (Prometheus marks the target down) instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from redis import RedisError

from gemini_tasks import runtime
from gemini_tasks.pool import KeyPool, KeyStatus, PoolConfig
from gemini_tasks.pool.state import KeyState, ModelState
from gemini_tasks.producer import Job


class PoolCollector:
    """Per key id: state, requests, 429s, errors, tokens; for the pool: usable keys and the
    wait until the next one."""

    def __init__(self, pool: KeyPool, model: str):
        self.pool, self.model = pool, model

    def collect(self) -> Iterator[Metric]:
        status = self.pool.status(self.model)
        key_labels = ["key_id", "label", "project", "model"]
        state = GaugeMetricFamily(
            "gemini_tasks_key_state", "1 for the key's current state, 0 for the others",
            labels=[*key_labels, "state"],
        )  # fmt: skip
        counters = {
            name: CounterMetricFamily(f"gemini_tasks_key_{name}", text, labels=key_labels)
            for name, text in (
                ("requests", "Calls made with the key"),
                ("successes", "Calls that succeeded"),
                ("quota_errors", "Calls answered 429 RESOURCE_EXHAUSTED"),
                ("failures", "Calls that failed with a server, network or key error"),
                ("tokens", "Tokens Gemini counted for the key's successful calls"),
            )
        }
        in_flight = GaugeMetricFamily(
            "gemini_tasks_key_in_flight", "Calls in flight with the key", labels=key_labels
        )
        seconds_left = GaugeMetricFamily(
            "gemini_tasks_key_seconds_left", "Seconds until the key leaves its state",
            labels=key_labels,
        )  # fmt: skip
        reasons = GaugeMetricFamily(
            "gemini_tasks_key_reason",
            "1 for a key that is out (FAILED_INIT) or exhausted, labelled with why",
            labels=[*key_labels, "reason"],
        )
        for key in status.keys:
            values = [key.key_id, key.label, key.project, self.model]
            for status_name in KeyStatus:
                state.add_metric([*values, status_name.value], float(key.status is status_name))
            for name, family in counters.items():
                family.add_metric(values, _counter(key, name))
            in_flight.add_metric(values, key.in_flight)
            seconds_left.add_metric(values, key.seconds_left)
            if key.reason:
                reasons.add_metric([*values, key.reason[:200]], 1.0)
        yield state
        yield reasons
        yield from counters.values()
        yield in_flight
        yield seconds_left
        yield GaugeMetricFamily(
            "gemini_tasks_usable_keys", "Keys usable now", value=status.usable, labels=None
        )
        yield GaugeMetricFamily(
            "gemini_tasks_seconds_until_next_key",
            "Seconds until a key is usable (0 if one is now, +Inf if every key has failed)",
            value=status.seconds_until_usable(),
        )
        yield from _model_metrics(status.model)


def _model_metrics(model: ModelState) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "gemini_tasks_model_outage_seconds",
        "Seconds the model's circuit stays open (Gemini failing for everyone), 0 if closed",
        value=model.outage_seconds_left,
    )
    yield GaugeMetricFamily(
        "gemini_tasks_model_capacity_backoff_seconds",
        "Seconds every key of the model waits after a capacity 429",
        value=model.capacity_seconds_left,
    )


def _counter(key: KeyState, name: str) -> float:
    value: int = getattr(key, name)
    return float(value)


class JobsCollector:
    """The `limit` most recent jobs, labelled by job id, and the broker's queues."""

    def __init__(self, rt: runtime.Runtime, limit: int):
        self.rt, self.limit = rt, limit

    def collect(self) -> Iterator[Metric]:
        job = ["job_id"]
        prompts = CounterMetricFamily(
            "gemini_tasks_prompts", "Prompts that ended, by model and outcome (ok or the "
            "error kind); a retried prompt counts each time it ends", labels=[*job, "model",
            "outcome"],
        )  # fmt: skip
        histograms = {
            name: HistogramMetricFamily(f"gemini_tasks_{name}_seconds", text, labels=job)
            for name, text in (
                ("prompt", "Seconds from a prompt's first start to its result, waits included"),
                ("api", "Seconds a prompt spent in Gemini calls"),
            )
        }
        gauges = {
            name: GaugeMetricFamily(f"gemini_tasks_job_{name}", text, labels=job)
            for name, text in (
                ("prompts", "Prompts the job has"),
                ("waiting", "Prompts waiting in Redis for their turn or a key"),
                ("in_flight", "Prompts fed to workers and not finished"),
                ("batched", "Prompts in the job's Batch Mode batches, not yet answered"),
            )
        }
        state = GaugeMetricFamily("gemini_tasks_job_state", "1 for the job's state",
                                  labels=[*job, "state", "priority"])  # fmt: skip
        rate_limited = CounterMetricFamily(
            "gemini_tasks_job_rate_limited", "Calls answered 429 (quota or capacity)", labels=job
        )
        tokens = CounterMetricFamily("gemini_tasks_job_tokens", "Tokens Gemini counted",
                                     labels=[*job, "kind"])  # fmt: skip
        cost = CounterMetricFamily("gemini_tasks_job_cost_usd", "What the job's calls cost "
                                   "(GEMINI_TASKS_PRICES)", labels=job)  # fmt: skip
        for each in Job.recent(self.limit, self.rt):
            status, metrics = each.status(), each.outcomes.metrics(each.id)
            label = [each.id]
            for (model, outcome), count in sorted(metrics.outcomes.items()):
                prompts.add_metric([*label, model, outcome], count)
            for name, histogram in (("prompt", metrics.prompt_seconds),
                                    ("api", metrics.api_seconds)):  # fmt: skip
                histograms[name].add_metric(label, histogram.cumulative(), histogram.total)
            gauges["prompts"].add_metric(label, status.total)
            gauges["waiting"].add_metric(label, status.waiting)
            gauges["in_flight"].add_metric(label, status.in_flight)
            gauges["batched"].add_metric(label, status.batched)
            state.add_metric([*label, status.state, status.info.priority.value], 1)
            counts = status.counts
            rate_limited.add_metric(label, counts.rate_limited)
            for kind, value in (("input", counts.prompt_tokens), ("output", counts.output_tokens),
                                ("thinking", counts.thought_tokens),
                                ("cached", counts.cached_tokens)):  # fmt: skip
                tokens.add_metric([*label, kind], value)
            cost.add_metric(label, counts.cost)
        yield prompts
        yield from histograms.values()
        yield from gauges.values()
        yield from (state, rate_limited, tokens, cost)
        yield _queue_length(self.rt, self.rt.settings.queue)


def _queue_length(rt: runtime.Runtime, queue: str) -> Metric:
    family = GaugeMetricFamily(
        "gemini_tasks_broker_queue_length",
        "Messages in the broker's queue, fed and not yet taken by a worker",
        labels=["queue"],
    )
    family.add_metric([queue], rt.broker.llen(queue))
    return family


def registry_for(rt: runtime.Runtime, model: str, jobs: int) -> CollectorRegistry:
    """Every collector, reading the cluster through `rt` (an impatient one, for a scrape)."""
    registry = CollectorRegistry()
    pool = KeyPool(rt.redis, [], PoolConfig.from_settings(rt.settings), rt.keys)
    registry.register(PoolCollector(pool, model))
    registry.register(JobsCollector(rt, jobs))
    return registry


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(registry: CollectorRegistry) -> WsgiApp:
    """`/metrics`, answering 503 while Redis cannot be read."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the metrics are at /metrics\n"]
        try:
            body = generate_latest(registry)
        except RedisError as exc:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"Redis unavailable: {type(exc).__name__}\n".encode()]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # a scrape every few seconds
        return


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(rt: runtime.Runtime, model: str, port: int, host: str = "127.0.0.1",
          jobs: int = 20) -> None:  # fmt: skip
    """Serve `/metrics` until interrupted."""
    server = make_server(host, port, wsgi_app(registry_for(rt, model, jobs)), _Server, _Quiet)
    print(f"metrics on http://{host}:{port}/metrics", flush=True)
    server.serve_forever()
