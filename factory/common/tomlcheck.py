"""Reading and checking TOML tables: recipes, nightly configs and the report share it.

Every mistake is one line naming the file and the field (``FILE: field 'T.KEY': ...``),
the same for every kind of file, so a user learns the format of errors once.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.common.errors import UserError


def read_toml(path: Path, what: str, hint: str | None = None) -> dict[str, Any]:
    """The parsed file, or one line saying why not (`what`: "recipe", "config")."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what} file", hint=hint) from None
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}", hint=hint) from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text file (a {what} is UTF-8 TOML)", hint=hint) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}", hint=hint) from None


@dataclass(frozen=True)
class Table:
    """One table of a file: where it came from and the key prefix errors name."""

    src: str
    prefix: str = ""  # "nightly." for [nightly]; "" for a recipe's top level

    def error(self, key: str, msg: str, hint: str | None = None) -> UserError:
        return UserError(f"{self.src}: field '{self.prefix}{key}': {msg}", hint=hint)

    def check_types(self, data: Mapping[str, Any], types: Mapping[str, type]) -> None:
        """Unknown keys and wrong types refused (a TOML bool is not an int)."""
        for key, value in data.items():
            if key not in types:
                raise self.error(key, f"unknown key (known: {', '.join(sorted(types))})")
            want = types[key]
            if not isinstance(value, want) or (isinstance(value, bool) and want is not bool):
                raise self.error(key, f"must be a {want.__name__}, not {type(value).__name__}")

    def require(self, data: Mapping[str, Any], *keys: str) -> None:
        for key in keys:
            if key not in data:
                raise self.error(key, "is required")

    def strings(self, key: str, value: Any) -> tuple[str, ...]:
        """A list of non-empty strings."""
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, "must be a list of non-empty strings")
        return tuple(value)

    def sub(self, name: str) -> Table:
        return Table(self.src, f"{self.prefix}{name}.")


def table_of(data: Mapping[str, Any], name: str, src: str, hint: str) -> dict[str, Any]:
    """The [name] table of a file, or one line saying it is missing."""
    table = data.get(name)
    if not isinstance(table, dict):
        raise UserError(f"{src}: no [{name}] table", hint=hint)
    return table
