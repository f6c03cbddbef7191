"""The key pool in Prometheus' text format, for an operator's scraper.

`gemini-tasks metrics --port N` serves `/metrics`; each scrape reads the pool's state from
Redis at that moment, so any machine can run it and several may.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gemini_tasks.pool import KeyPool, KeyStatus
from gemini_tasks.pool.state import KeyState, ModelState


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


def serve(pool: KeyPool, model: str, port: int, host: str = "127.0.0.1") -> None:
    """Serve `/metrics` until interrupted."""
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool, model))
    start_http_server(port, addr=host, registry=registry)
    print(f"key pool metrics on http://{host}:{port}/metrics", flush=True)
    while True:
        time.sleep(3600)
