"""Where the `gemini-tasks` commands write: results on stdout, everything else on stderr;
the command's exit codes; and how Ctrl-C ends a command.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from rich.console import Console

# Messages are not wrapped: a command they name must stay whole, to be copied.
stderr = Console(stderr=True, soft_wrap=True)

EXIT_ERROR = 1  # the command could not do its work
EXIT_PROMPTS_FAILED = 3  # it did, and some prompts failed
EXIT_INTERRUPTED = 130  # Ctrl-C, by the shell's convention

# After Ctrl-C a command has this long to say how to go on and exit by itself.
INTERRUPT_GRACE = 1.5

_hint = "interrupted"


def on_interrupt(hint: str) -> None:
    """What to print if Ctrl-C ends the command from here on (how to go on)."""
    global _hint
    _hint = hint


def handle_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual, and a watchdog exits with 130 if the
    command has not ended `INTERRUPT_GRACE` seconds later: Python raises it wherever the main
    thread is, which can leave a lock taken (a `with lock:` is not atomic against signals,
    bpo-29988) and the progress display waiting on it for ever. Only for commands with
    nothing of their own to stop (not local mode, whose Redis and workers must be stopped)."""
    signal.signal(signal.SIGINT, _interrupted)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    watchdog = threading.Timer(INTERRUPT_GRACE, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: Python's
    raise KeyboardInterrupt


def _exit_now() -> None:
    os.write(2, f"\n{_hint}\n".encode())
    os._exit(EXIT_INTERRUPTED)
