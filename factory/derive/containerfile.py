"""Parse and check a Containerfile: one stage, FROM one image, nothing fetched from outside.

Pure: text in, a frozen description out, or one UserError line naming what is refused.
What buildah does with each step is buildah's business; this module only decides what
reprobase accepts, because some instructions cannot be reproduced from the image alone:
- a second FROM (multi-stage builds, `COPY --from`): only the last stage is recorded;
- `ADD https://...` or a git URL: the bytes come from a server that may change them;
- `RUN --mount=type=secret|ssh`: what the step saw cannot be recorded.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from factory.common.canonical import sha256_digest
from factory.common.errors import UserError

# Build arguments reprobase sets itself: the proxy reaches the steps through buildah's
# own environment (never a build argument, which buildah would record in its history).
RESERVED_ARGS = frozenset(
    {"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "all_proxy"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}
    | {"LD_PRELOAD", "FAKETIME", "NO_FAKE_STAT", "DONT_FAKE_MONOTONIC"}
)
SDE_ARG = "SOURCE_DATE_EPOCH"
MAX_CONTAINERFILE = 64 * 1024  # recorded in the image's annotations: bounded
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_REMOTE = re.compile(r"^(https?|git|ssh)://|^git@|\.git(#|$)")


class Keyword(enum.Enum):
    """The instructions accepted, and whether each one can change the root filesystem
    (value: name, changes files; the name keeps every value distinct)."""

    FROM = ("FROM", False)
    RUN = ("RUN", True)
    COPY = ("COPY", True)
    ADD = ("ADD", True)
    ENV = ("ENV", False)
    ARG = ("ARG", False)
    LABEL = ("LABEL", False)
    CMD = ("CMD", False)
    ENTRYPOINT = ("ENTRYPOINT", False)
    WORKDIR = ("WORKDIR", True)  # creates the directory
    USER = ("USER", False)
    EXPOSE = ("EXPOSE", False)
    VOLUME = ("VOLUME", False)
    STOPSIGNAL = ("STOPSIGNAL", False)
    SHELL = ("SHELL", False)
    HEALTHCHECK = ("HEALTHCHECK", False)
    ONBUILD = ("ONBUILD", False)
    MAINTAINER = ("MAINTAINER", False)

    @property
    def changes_files(self) -> bool:
        return bool(self.value[1])

    @classmethod
    def of(cls, word: str, line: int) -> Keyword:
        try:
            return cls[word.upper()]
        except KeyError:
            raise UserError(
                f"Containerfile line {line}: unknown instruction {word!r}",
                hint="see docs/derived.md for what reprobase builds",
            ) from None


@dataclass(frozen=True)
class Instruction:
    keyword: Keyword
    args: str
    line: int  # where it starts (1-based)
    end_line: int  # where it ends (continuations)


@dataclass(frozen=True)
class Containerfile:
    text: str
    instructions: tuple[Instruction, ...]
    base: str  # the FROM reference, with ARGs before FROM substituted
    declared_args: frozenset[str]  # ARGs of the stage (after FROM)

    @property
    def digest(self) -> str:
        return sha256_digest(self.text.encode())

    @property
    def from_instruction(self) -> Instruction:
        return next(i for i in self.instructions if i.keyword is Keyword.FROM)

    def with_args(self, names: Iterable[str]) -> str:
        """The text with `ARG NAME` declared right after FROM for each name the stage does
        not declare yet, so that every step sees it in its environment (buildah passes a
        build argument to RUN only when it is declared). Only this copy is run; the user's
        text is what the image records."""
        missing = [n for n in names if n not in self.declared_args]
        if not missing:
            return self.text
        lines = self.text.splitlines(keepends=True)
        at = self.from_instruction.end_line
        if at == len(lines) and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        extra = [f"ARG {n}\n" for n in missing]
        return "".join(lines[:at] + extra + lines[at:])


def _logical_lines(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, joined text) of each instruction: comments and blank lines
    dropped, backslash continuations joined (the default escape character)."""
    out: list[tuple[int, int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1])
            continue
        buf.append(stripped)
        out.append((start, n, " ".join(b for b in buf if b)))
        buf = []
    if buf:
        out.append((start, start + len(buf) - 1, " ".join(buf)))
    return out


def substitute(value: str, env: Mapping[str, str]) -> str:
    """$NAME and ${NAME} from env (unknown names become empty, as in buildah)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _arg_default(args: str) -> tuple[str, str | None]:
    name, sep, default = args.partition("=")
    return name.strip(), (default.strip().strip('"') if sep else None)


def _check(ins: Instruction) -> None:
    words = ins.args.split()
    where = f"Containerfile line {ins.line}"
    if ins.keyword in (Keyword.COPY, Keyword.ADD) and any(w.startswith("--from") for w in words):
        raise UserError(
            f"{where}: {ins.keyword.name} --from needs another stage, and reprobase builds "
            "one stage only",
            hint="copy from the build context instead",
        )
    if ins.keyword is Keyword.ADD and any(_REMOTE.search(w) for w in words[:-1]):
        raise UserError(
            f"{where}: ADD of a URL is not reproducible (the server may change the bytes)",
            hint="download it into the build context and COPY it, or fetch and check its "
            "hash in a RUN step",
        )
    if ins.keyword is Keyword.RUN and re.search(r"--mount=\S*type=(secret|ssh)", ins.args):
        raise UserError(
            f"{where}: RUN --mount=type=secret/ssh cannot be recorded in the image",
            hint="reprobase images must rebuild from what they record",
        )


def parse(text: str, build_args: Mapping[str, str]) -> Containerfile:
    if len(text.encode()) > MAX_CONTAINERFILE:
        raise UserError(
            f"the Containerfile has {len(text.encode())} bytes; at most {MAX_CONTAINERFILE}",
            hint="it is recorded in the image: keep it short, move scripts into the context",
        )
    if "\x00" in text:
        raise UserError("the Containerfile is not text (it holds a NUL byte)")
    instructions: list[Instruction] = []
    for start, end, line in _logical_lines(text):
        word, _, rest = line.partition(" ")
        instructions.append(Instruction(Keyword.of(word, start), rest.strip(), start, end))
    froms = [i for i in instructions if i.keyword is Keyword.FROM]
    if not froms:
        raise UserError("the Containerfile has no FROM", hint="FROM one of reprobase's images")
    if len(froms) > 1:
        raise UserError(
            f"Containerfile line {froms[1].line}: a second FROM; reprobase builds "
            "single-stage Containerfiles only",
            hint="build the other stage as its own derived image and FROM it",
        )
    pre = instructions[: instructions.index(froms[0])]
    if any(i.keyword is not Keyword.ARG for i in pre):
        bad = next(i for i in pre if i.keyword is not Keyword.ARG)
        raise UserError(f"Containerfile line {bad.line}: only ARG may come before FROM")
    env: dict[str, str] = {}
    for i in pre:
        name, default = _arg_default(i.args)
        value = build_args.get(name, default)
        if value is not None:
            env[name] = value
    words = [w for w in froms[0].args.split() if not w.startswith("--platform")]
    if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
        raise UserError(f"Containerfile line {froms[0].line}: FROM IMAGE [AS NAME] expected")
    base = substitute(words[0], env)
    if not base or base == "scratch":
        raise UserError(
            f"Containerfile line {froms[0].line}: FROM {base or '(empty)'} is not a "
            "reprobase image",
            hint="FROM one of reprobase's images (a registry reference, name@sha256:..., "
            "or oci:DIR[:TAG])",
        )
    declared = set()
    for i in instructions[instructions.index(froms[0]) + 1 :]:
        _check(i)
        if i.keyword is Keyword.ARG:
            declared.add(_arg_default(i.args)[0])
    return Containerfile(text, tuple(instructions), base, frozenset(declared))


def parse_build_args(items: Iterable[str]) -> dict[str, str]:
    """--build-arg K=V, each once; reprobase's own names are refused."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(f"--build-arg {item!r}: expected NAME=VALUE")
        if name in RESERVED_ARGS:
            raise UserError(
                f"--build-arg {name} is set by reprobase at build time and never recorded",
                hint="drop it: RUN steps reach the cache proxy by themselves",
            )
        if name in out:
            raise UserError(f"--build-arg {name} is given twice")
        out[name] = value
    return out
