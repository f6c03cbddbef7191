"""Where the `gemini-tasks` commands write: results on stdout, everything else on stderr;
and the command's exit codes."""

from __future__ import annotations

from rich.console import Console

# Messages are not wrapped: a command they name must stay whole, to be copied.
stderr = Console(stderr=True, soft_wrap=True)

EXIT_ERROR = 1  # the command could not do its work
EXIT_PROMPTS_FAILED = 3  # it did, and some prompts failed
EXIT_INTERRUPTED = 130  # Ctrl-C, by the shell's convention
