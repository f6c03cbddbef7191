"""A Gemini API emulator, so pipelines can be tested and rehearsed offline at no cost.

Start it with `gemini-tasks emulator --port N` and point the SDK at it with
`GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:N`.
"""

from gemini_tasks.emulator.server import Emulator, EmulatorConfig, Faults, serve
from gemini_tasks.limits import Limits

__all__ = ["Emulator", "EmulatorConfig", "Faults", "Limits", "serve"]
