"""User-facing errors: one actionable line, no traceback unless --debug."""

from __future__ import annotations

import shlex
from pathlib import Path

from cache_proxy.errors import UserError

# One error type for the whole tool: the proxy's, since cache_proxy stands alone (it must
# start without factory) and factory already builds on it. Re-exported from here.
__all__ = ["ToolFailed", "UserError", "meaningful_lines"]


def meaningful_lines(argv: list[str], stderr: str, count: int = 3) -> list[str]:
    """The tool's own last words: its last non-empty stderr lines, without any line that
    repeats our command line (mmdebstrap echoes it) or only says that it failed."""
    ours = (" ".join(argv), shlex.join(argv))
    lines = []
    for raw in stderr.splitlines():
        line = " ".join(raw.split())
        if (
            not line
            or any(o in raw for o in ours)
            or (len(argv) > 2 and argv[1] in line and argv[-1] in line)
        ):
            continue
        lines.append(line)
    generic = [ln for ln in lines if not ln.lower().endswith(("failed to run", "failed"))]
    # apt and mmdebstrap mark errors "E:": those say what went wrong, "I:" lines do not
    errors = [ln for ln in generic if ln.startswith(("E:", "error", "Error", "fatal"))]
    return (errors or generic or lines)[-count:]


def shorten(text: str, limit: int = 400) -> str:
    """At most limit characters, cut between words."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


class ToolFailed(UserError):
    """An external tool exited non-zero; carries the tail of its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str) -> None:
        # the tool itself, not a wrapper running it (unshare ... -- python -m varyenv -- TOOL)
        tool = Path(argv[len(argv) - argv[::-1].index("--")] if "--" in argv[:-1] else argv[0]).name
        said = " | ".join(meaningful_lines(argv, stderr_tail)) or "(no error output)"
        super().__init__(
            f"{tool} failed with exit code {returncode}: {shorten(said)}",
            hint="run again with --debug to see the full command and its output",
        )
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail
