"""Redis memory after a batch with media, against the size of the media.

N prompts share M media files (each staged once, content-addressed); the figure to compare
is what the same batch would cost if every task carried its media bytes in its arguments,
as a naive design would: N x file size.

    python bench/media_memory.py --prompts 200 --files 4 --file-mib 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from harness import cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--file-mib", type=float, default=2.0)
    args = parser.parse_args()
    with cluster() as running:
        files = []
        for i in range(args.files):
            path = running.run_dir / f"clip{i}.mp4"
            path.write_bytes(os.urandom(int(args.file_mib * 1024 * 1024)))
            files.append(path)
        media = sum(p.stat().st_size for p in files)
        prompts = running.run_dir / "prompts.jsonl"
        prompts.write_text("".join(
            json.dumps({"prompt": f"Describe clip {i}: <video>",
                        "video_path": str(files[i % len(files)])}) + "\n"
            for i in range(args.prompts)
        ))  # fmt: skip
        client = running.redis()
        before = client.info("memory")["used_memory"]
        running.start_workers(2, 50)
        done = subprocess.run(
            [sys.executable, "-m", "gemini_tasks", "run", str(prompts),
             "-o", str(running.run_dir / "out.jsonl")],
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True, text=True, cwd=running.run_dir,
        )  # fmt: skip
        running.stop_workers()
        after = client.info("memory")["used_memory"]
    naive = args.prompts * args.file_mib * 2**20
    print(next(line for line in done.stderr.splitlines() if "prompts succeeded" in line))
    print(f"{args.prompts} prompts sharing {args.files} files of {args.file_mib:g} MiB")
    print(f"media, unique:                 {media / 2**20:8.1f} MiB")
    print(f"Redis memory growth:           {(after - before) / 2**20:8.1f} MiB")
    print(f"bytes in every task (naive):   {naive / 2**20:8.1f} MiB")
    print(f"Redis growth / unique media:   {(after - before) / media:8.2f}x")
    print(f"naive / Redis growth:          {naive / (after - before):8.1f}x")


if __name__ == "__main__":
    main()
