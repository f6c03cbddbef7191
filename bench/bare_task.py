"""The baseline of bench/overhead.py: a bare Celery task on the project's own app and workers,
making the same single Gemini call with one key, without the key pool, staging or retries."""

import uuid
from functools import cache

from gemini_tasks import runtime
from gemini_tasks.celery import app
from gemini_tasks.keys import load_keys
from gemini_tasks.worker.clients import client_for


@cache
def _key():
    return load_keys()[0]


@app.task(name="bench.bare_generate")
def bare_generate(prompt: str) -> str:
    settings = runtime.current().settings
    client = client_for(_key(), settings.gemini_base_url, settings.request_timeout)
    return client.models.generate_content(model=settings.model, contents=prompt).text


def send_bare(prompts: list[str]) -> list[str]:
    """Send one bare task a prompt, through one producer as a Celery user would; returns
    their task ids."""
    ids = [uuid.uuid4().hex for _ in prompts]
    with app.producer_or_acquire() as producer:
        for prompt, task_id in zip(prompts, ids, strict=True):
            bare_generate.apply_async(args=(prompt,), task_id=task_id, producer=producer)
    return ids
