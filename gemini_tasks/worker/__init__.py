"""The worker side: the Celery tasks, and everything a worker does to answer one prompt.

`task` holds the Celery entry points; `run` the loop of one prompt; `decide` its rules, a
pure function; `classify`, `request` and `response` translate to and from the SDK;
`uploads`, `caching` and `clients` are the process's long-lived connections to Gemini.
May import the bottom layer, `media` and `pool`; never `producer`, `ops` or `emulator`.
"""
