"""Ctrl-C always ends a command that waits: even when the interrupt leaves a lock taken."""

import signal
import subprocess
import sys
import textwrap

STUCK = textwrap.dedent(
    """
    import threading, time
    from gemini_tasks.ops.output import handle_interrupts, on_interrupt
    handle_interrupts()
    on_interrupt("interrupted; collect it with `gemini-tasks collect JOB`")
    lock = threading.Lock()
    lock.acquire()  # as if the interrupt had landed inside a `with lock:` of another thread
    try:
        print("ready", flush=True)  # inside the try: the interrupt may come at once
        time.sleep(60)
    except KeyboardInterrupt:
        lock.acquire()  # the clean-up waits on the lock for ever
    """
)


def test_a_command_stuck_after_ctrl_c_still_exits_130_saying_how_to_go_on():
    process = subprocess.Popen([sys.executable, "-c", STUCK], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert "collect it with `gemini-tasks collect JOB`" in process.stderr.read()
