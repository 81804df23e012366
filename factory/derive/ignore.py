"""`.containerignore` (or `.dockerignore`): which files of a directory the build context holds.

The recorded context is what the builds see, so the ignore file is applied when the
context is packed (factory.derive.context), with the rules buildah and Docker apply
(moby's patternmatcher): one pattern a line, `#` comments, `!` re-includes; `*` and `?`
never cross `/`, `**` crosses any number of directories; a pattern that matches a
directory matches everything below it; the last pattern that matches a path decides.
Without it, a checkout's `.git`, virtualenv and caches would be recorded with the image.

Pure: patterns in, decisions out (the caller reads the file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

NAMES = (".containerignore", ".dockerignore")  # buildah's order


@dataclass(frozen=True)
class Pattern:
    text: str
    negated: bool
    regex: re.Pattern[str]

    @property
    def literal_prefix(self) -> str:
        """The pattern up to its first wildcard (a directory below which it may match)."""
        return re.split(r"[*?\[\\]", self.text, maxsplit=1)[0]


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/": zero or more whole directories
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _clean(text: str) -> str:
    parts = [p for p in text.strip("/").split("/") if p not in ("", ".")]
    return "/".join(parts)


def parse(text: str) -> tuple[Pattern, ...]:
    out: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = _clean(line[1:].strip() if negated else line)
        if body:
            out.append(Pattern(body, negated, re.compile(_translate(body))))
    return tuple(out)


@dataclass(frozen=True)
class Ignore:
    patterns: tuple[Pattern, ...] = ()

    @classmethod
    def of(cls, root: Path) -> Ignore:
        for name in NAMES:
            path = root / name
            if path.is_file():
                return cls(parse(path.read_text(encoding="utf-8", errors="replace")))
        return cls()

    def excluded(self, rel: str) -> bool:
        """rel: a path relative to the context, with '/' separators."""
        parts = rel.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for p in self.patterns:
            if any(p.regex.fullmatch(x) for x in prefixes):
                verdict = not p.negated
        return verdict

    def prune(self, rel_dir: str) -> bool:
        """Nothing below this excluded directory can be re-included: skip walking it."""
        if not self.excluded(rel_dir):
            return False
        for p in self.patterns:
            if p.negated:
                prefix = p.literal_prefix
                if not prefix or prefix.startswith(rel_dir + "/") or rel_dir.startswith(prefix):
                    return False
        return True
