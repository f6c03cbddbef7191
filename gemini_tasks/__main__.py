"""`python -m gemini_tasks` is the `gemini-tasks` command."""

from gemini_tasks.ops.cli import main

main()
