"""Progress for concurrent builds: plain prefixed lines in a log, live lines on a terminal."""

from __future__ import annotations

import io
import re

from factory.common.progress import Progress, Task

A = Task("debian:bookworm", "amd64", "A")
B = Task("debian:bookworm", "amd64", "B")


def test_plain_lines_name_image_arch_and_build_and_keys_stay_stable() -> None:
    out = io.StringIO()
    p = Progress(out, live=False)
    with p.stage("root filesystem (mmdebstrap)", A), p.stage("root filesystem (mmdebstrap)", B):
        p.say("a message")
    p.record("compression", 1.23456, A)
    p.finish(A)
    lines = out.getvalue().splitlines()
    assert [re.sub(r"^\[\d\d:\d\d\] ", "", ln).split(": done in")[0] for ln in lines] == [
        "debian:bookworm amd64 A: root filesystem (mmdebstrap) ...",
        "debian:bookworm amd64 B: root filesystem (mmdebstrap) ...",
        "a message",
        "debian:bookworm amd64 B: root filesystem (mmdebstrap)",
        "debian:bookworm amd64 A: root filesystem (mmdebstrap)",
    ]
    assert set(p.durations) == {
        "build A amd64: root filesystem (mmdebstrap)",
        "build B amd64: root filesystem (mmdebstrap)",
        "build A amd64: compression",
    }
    assert p.durations["build A amd64: compression"] == 1.235


def test_live_lines_on_a_terminal_then_one_summary() -> None:
    out = io.StringIO()
    fetched = iter([1_500_000, 3_000_000])
    p = Progress(out, live=True, meter=lambda: next(fetched, 3_000_000))
    with p.stage("root filesystem (mmdebstrap)", A):
        with p.stage("canonical layer", B):
            p.say("build B: index sha256:0")
        p.finish(B)
        assert p._live is not None  # A still runs
    p.finish(A)
    assert p._live is None  # the last task stopped the display
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # without rich's escapes
    assert "debian:bookworm amd64 A" in text and "debian:bookworm amd64 B" in text
    assert "build B: index sha256:0" in text
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(
        r"\[\d\d:\d\d\] 0 running, 2 done, \d\d:\d\d elapsed, \d+\.\d MB fetched upstream", last
    ), last
    # no "... done in" lines on a terminal: the live lines say it
    assert "done in" not in text
    assert set(p.durations) == {
        "build A amd64: root filesystem (mmdebstrap)",
        "build B amd64: canonical layer",
    }
