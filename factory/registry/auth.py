"""Registry credentials and authentication challenges.

Credentials are resolved in one place, in this order (first match wins):
1. REPROBASE_REGISTRY_USER + REPROBASE_REGISTRY_PASSWORD (for every registry
   this process talks to; meant for CI);
2. the auth file named by REPROBASE_REGISTRY_AUTH_FILE or REGISTRY_AUTH_FILE;
3. $XDG_RUNTIME_DIR/containers/auth.json (podman login, skopeo login);
4. ~/.config/containers/auth.json;
5. $DOCKER_CONFIG/config.json or ~/.docker/config.json (docker login).
With none of these the client is anonymous. Credential helpers (credHelpers,
credsStore) are not run.

Challenges follow RFC 7235 §4.1 (WWW-Authenticate) and the token protocol of
distribution's docs/spec/auth/token.md. Secrets never reach a log line or an
exception message: Credentials and Token hide them from repr().
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.common.errors import UserError

ENV_USER = "REPROBASE_REGISTRY_USER"
ENV_PASSWORD = "REPROBASE_REGISTRY_PASSWORD"
ENV_AUTH_FILE = "REPROBASE_REGISTRY_AUTH_FILE"
LOGIN_HINT = f"log in with 'podman login' or 'docker login', or set {ENV_USER} and {ENV_PASSWORD}"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "environment"  # where they came from, safe to print

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Challenge:
    """One parsed WWW-Authenticate challenge: scheme plus auth-params."""

    scheme: str  # lower-case: "basic" or "bearer"
    params: dict[str, str]


# RFC 7235 §2.1 auth-param: token BWS "=" BWS ( token / quoted-string )
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_!#$%&\'*+.^`|~-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a WWW-Authenticate value into challenges (several may share a header)."""
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = re.compile(r"\s*,?\s*([A-Za-z][A-Za-z0-9_-]*)\s*").match(header, pos)
        if not m or m.end() == pos:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while pos < len(header):
            pm = _PARAM_RE.match(header, pos)
            if not pm:
                break
            value = pm.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            params[pm.group(1).lower()] = value
            pos = pm.end()
        out.append(Challenge(scheme, params))
    return out


def _auth_file_candidates(env: Mapping[str, str], home: Path) -> list[Path]:
    files: list[Path] = []
    for var in (ENV_AUTH_FILE, "REGISTRY_AUTH_FILE"):
        if env.get(var):
            files.append(Path(env[var]))
    if env.get("XDG_RUNTIME_DIR"):
        files.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    files.append(home / ".config" / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    files.append(docker_dir / "config.json")
    return files


def _normalise_key(key: str) -> str:
    """Auth file keys may be URLs ('https://index.docker.io/v1/') or host[/repo]."""
    key = re.sub(r"^https?://", "", key).rstrip("/")
    if key.endswith("/v1") or key.endswith("/v2"):
        key = key[:-3]
    if key in ("index.docker.io", "registry-1.docker.io"):
        key = "docker.io"
    return key


def _decode_entry(entry: Any, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            raw = base64.b64decode(str(entry["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise UserError(f"{source}: an 'auth' entry is not valid base64") from None
        user, sep, password = raw.partition(":")
        if sep:
            return Credentials(user, password, source)
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]), source)
    return None


def lookup_in_auth_file(
    data: dict[str, Any], registry: str, repository: str, source: str
) -> Credentials | None:
    """containers-auth.json(5): the most specific key (host/repo/...) wins over host."""
    auths = data.get("auths")
    if not isinstance(auths, dict):
        return None
    table = {_normalise_key(k): v for k, v in auths.items()}
    parts = repository.split("/")
    for n in range(len(parts), -1, -1):
        key = "/".join([registry, *parts[:n]])
        if key in table:
            creds = _decode_entry(table[key], source)
            if creds is not None:
                return creds
    return None


def resolve_credentials(
    registry: str,
    repository: str,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Credentials | None:
    """Find credentials for registry/repository in the documented order."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME", str(Path.home()))) if home is None else home
    if env.get(ENV_USER) and env.get(ENV_PASSWORD):
        return Credentials(env[ENV_USER], env[ENV_PASSWORD], f"${ENV_USER}")
    for path in _auth_file_candidates(env, home):
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read auth file {path}: {exc.__class__.__name__}") from None
        if isinstance(data, dict):
            creds = lookup_in_auth_file(data, registry, repository, str(path))
            if creds is not None:
                return creds
    return None


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    scope: str

    @property
    def header(self) -> str:
        return f"Bearer {self.value}"


def token_from_response(body: Any) -> str:
    """token.md §Token Response Fields: 'token', or 'access_token' for OAuth2 servers."""
    if isinstance(body, dict):
        value = body.get("token") or body.get("access_token")
        if isinstance(value, str) and value:
            return value
    raise UserError("the registry's token server answered without a token")
