"""Token pacing: K keys under an input-tokens-per-minute quota, with text and media mixes.

The emulator counts tokens as Gemini does (one per character of Japanese, about four
characters per token of English, media by its length), and each project may send T input
tokens a minute; the workers are told T (`GEMINI_TASKS_TPM`) and must estimate each
prompt's tokens before its call. Three mixes run one after the other on the same cluster
settings: English only (the baseline), a fifth of the prompts in Japanese, and prompts
about audio files whose length (so their tokens) their size does not show. Prints the share
of calls answered 429 for each, and the share of the aggregate token quota used.

    python bench/token_pacing.py --keys 3 --tpm 40000 --seconds 120
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import cluster

MODEL = "gemini-2.5-flash"
ENGLISH = "Summarise the quarterly report for the board and list three risks. " * 30
JAPANESE = "四半期報告書を取締役会向けに要約し、三つのリスクを挙げてください。" * 20
AUDIO_SECONDS = 300  # 9,600 tokens of audio in a file of a few hundred bytes


def records(mix: str, count: int, run_dir: Path) -> list[dict]:
    if mix == "media":
        audio = []
        for i in range(4):
            path = run_dir / f"call{i}.mp3"
            path.write_bytes(
                f"EMULATED-MEDIA seconds={AUDIO_SECONDS}\n".encode() + bytes([i]) * 400
            )
            audio.append(str(path))
        return [{"prompt": f"Transcribe {i}: <audio>", "audio_path": audio[i % 4]}
                for i in range(count)]  # fmt: skip
    japanese = mix == "japanese"
    return [
        {"prompt": f"{i} " + (JAPANESE if japanese and i % 5 == 0 else ENGLISH)}
        for i in range(count)
    ]


def run(mix: str, keys: int, tpm: int, seconds: float, concurrency: int) -> dict:
    env = {"GEMINI_TASKS_MODEL": MODEL, "GEMINI_TASKS_TPM": str(tpm),
           "GEMINI_TASKS_MAX_KEY_WAIT": str(10 * seconds)}  # fmt: skip
    with cluster(keys, ["--tpm", str(tpm)], env) as running:
        running.start_workers(2, concurrency)
        # Enough prompts to keep every project at its quota for the whole measured time.
        backlog = keys * tpm * (math.ceil(seconds / 60) + 1) // 500
        prompts = running.run_dir / "prompts.jsonl"
        lines = records(mix, backlog, running.run_dir)
        prompts.write_text("".join(json.dumps(r) + "\n" for r in lines))
        subprocess.run([sys.executable, "-m", "gemini_tasks", "submit", str(prompts)],
                       check=True, capture_output=True, cwd=running.run_dir,
                       env=dict(os.environ))  # fmt: skip
        start = time.monotonic()
        while not running.emulator_stats()["total"] and time.monotonic() - start < 60:
            time.sleep(0.2)
        time.sleep(seconds + 2)
        stats = running.emulator_stats(calls=True)
        running.kill_workers()
    calls = [c for c in stats["calls"] if c["outcome"] != "count"]
    first = min(c["t"] for c in calls)
    window = [c for c in calls if c["t"] < first + seconds]
    later = [c for c in window if c["t"] >= first + 60]
    limited = sum(c["outcome"] == "429" for c in window)
    return {
        "mix": mix,
        "calls": len(window),
        "ok": sum(c["outcome"] == "ok" for c in window),
        "429": limited,
        "share_429": limited / len(window) if window else 0.0,
        "share_429_later": (
            sum(c["outcome"] == "429" for c in later) / len(later) if later else 0.0
        ),
        "counted": stats["by_outcome"].get("count", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--tpm", type=int, default=40_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(f"{args.keys} keys x {args.tpm} input tokens/minute, 2 workers, {args.seconds:g} s")
    results = [
        run(mix, args.keys, args.tpm, args.seconds, args.concurrency)
        for mix in ("english", "japanese", "media")
    ]
    names = {"english": "English only (baseline)", "japanese": "a fifth in Japanese",
             "media": "audio, length unseen in size"}  # fmt: skip
    print(f"{'prompts':<30}{'calls':>7}{'429':>6}{'429 share':>11}{'after 1 min':>13}"
          f"{'countTokens':>13}")  # fmt: skip
    for r in results:
        print(f"{names[r['mix']]:<30}{r['calls']:>7}{r['429']:>6}{r['share_429']:>11.1%}"
              f"{r['share_429_later']:>13.1%}{r['counted']:>13}")  # fmt: skip
    english, japanese, media = results
    worst = max(japanese["share_429"], media["share_429_later"])
    print(
        f"aim: < 1% of calls answered 429 with a fifth in Japanese, and with media after its "
        f"first minute -> {'met' if worst < 0.01 else 'NOT met'}"
    )
    print(f"ok calls, Japanese mix / English only: {japanese['ok'] / max(1, english['ok']):.2f}")


if __name__ == "__main__":
    main()
