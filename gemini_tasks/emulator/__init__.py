"""A Gemini API emulator, so pipelines can be tested and rehearsed offline at no cost.

It plays Gemini as production serves it, failures included (quota and capacity 429s,
overloads, revoked keys, safety blocks, empty answers), each cited to its public source
where it is built. Start it with `gemini-tasks emulator --port N` and point the SDK at it
with `GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:N`. May import only the bottom layer;
nothing imports it but the CLI and tests.
"""

from gemini_tasks.emulator.config import EmulatorConfig
from gemini_tasks.emulator.rules import Rule
from gemini_tasks.emulator.server import Emulator, serve

__all__ = ["Emulator", "EmulatorConfig", "Rule", "serve"]
