"""`python -m gemini_tasks` is the `gemini-tasks` command."""

from gemini_tasks.cli import main

main()
