"""The progress display of `farm upgrade` / `farm rollback`: on a terminal, a status line
under the step lines (cleared before each line, redrawn after it and every tick); elsewhere
the step lines alone."""

from __future__ import annotations

import io
import threading

from openmfa.cli.progress import Progress


def test_on_a_terminal_a_status_line_follows_the_steps() -> None:
    out, now = io.StringIO(), [100.0]
    with Progress(out, tty=True, clock=lambda: now[0], tick=3600) as say:
        say("plan: upgrade to 1.2.0")
        now[0] += 75
        say("[node-b] out of the load balancer")
        say("[node-b] upgraded")
        say("[web-1] upgrading to 1.2.0 (the order waits at every node)")
        assert say.status() == (
            "  >> 1 hosts done, now web-1: upgrading to 1.2.0 (the order waits at every node)"
            "  (1:15)"
        )
    text = out.getvalue()
    assert text.count("plan: upgrade to 1.2.0\n") == 1
    assert "\r" in text and "(1:15)" in text
    assert text.endswith("\r")  # the status line is wiped at the end: the shell prompt is clean
    lines = [part.split("\r")[-1] for part in text.split("\n")]
    assert "[web-1] upgrading to 1.2.0 (the order waits at every node)" in lines


def test_elsewhere_one_line_per_step_and_nothing_redrawn() -> None:
    out = io.StringIO()
    with Progress(out, tty=False, tick=0.01) as say:
        say("[node-a] upgraded")
        threading.Event().wait(0.05)  # ticks would redraw on a terminal
        say("[dmz-1] back in its load balancer")
    assert out.getvalue() == "[node-a] upgraded\n[dmz-1] back in its load balancer\n"


def test_the_ticker_redraws_the_elapsed_time() -> None:
    out, now = io.StringIO(), [0.0]
    drawn = threading.Event()

    class Out(io.StringIO):
        def flush(self) -> None:
            if "(0:07)" in self.getvalue():
                drawn.set()

    out = Out()
    with Progress(out, tty=True, clock=lambda: now[0], tick=0.01) as say:
        say("[web-2] out of its load balancer")
        now[0] = 7.0
        assert drawn.wait(10), out.getvalue()
