"""Operations: the `gemini-tasks` command, local mode, metrics, and prompt files.

The top of the package beside `seed`: may import every other part; only the CLI imports
the emulator, and only inside the command that serves it.
"""
