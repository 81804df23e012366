"""User-facing errors: one actionable line, no traceback unless --debug."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad input, missing tool, refused timestamp)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        if self.hint:
            return f"error: {self.message} (hint: {self.hint})"
        return f"error: {self.message}"


class ToolFailed(UserError):
    """An external tool exited non-zero; carries the tail of its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str) -> None:
        super().__init__(
            f"{argv[0]} failed with exit code {returncode}: {stderr_tail.strip()[-800:]}",
            hint="run again with --debug to see the full command and its output",
        )
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class Mismatch(Exception):
    """Two builds that had to agree did not (exit code 1, not an error)."""
