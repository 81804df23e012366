"""The proxy's user-facing errors: one actionable line, no traceback unless --debug.

The proxy stands alone (it must start without the factory installed beside it), so it
has its own error type; ``reprobase proxy`` (factory.commands.proxy) turns it into
the factory's, with the same rendering.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad flag, unusable directory, port in use)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        if self.hint:
            return f"error: {self.message} (hint: {self.hint})"
        return f"error: {self.message}"
