"""Authentication against real registries: htpasswd (basic) and the bearer-token flow."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from factory.cli import main
from factory.common.canonical import sha256_digest
from factory.registry import pull_to_layout_sync, push_layout_sync
from factory.registry.errors import AuthError
from tests.registry_fixtures import (
    PASSWORD,
    USER,
    Registry,
    basic_registry,
    env_with_creds,
    layout,
    skopeo_raw,
    token_registry,
    unique_repo,
)

__all__ = ["basic_registry", "layout", "token_registry"]
CREDS = f"{USER}:{PASSWORD}"
SECRETS = (PASSWORD, base64.b64encode(CREDS.encode()).decode())


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "REPROBASE_REGISTRY_USER",
        "REPROBASE_REGISTRY_PASSWORD",
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))


def _use_env_creds(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env_with_creds().items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize("which", ["basic", "token"])
def test_anonymous_push_is_refused_with_hint(
    which: str, basic_registry: Registry, token_registry: Registry, layout: Path
) -> None:
    reg = basic_registry if which == "basic" else token_registry
    with pytest.raises(AuthError) as info:
        push_layout_sync(layout, [reg.ref(unique_repo(), "t")])
    line = info.value.render()
    assert "\n" not in line and "podman login" in line and "REPROBASE_REGISTRY_USER" in line


@pytest.mark.parametrize("which", ["basic", "token"])
def test_push_and_pull_with_env_credentials(
    which: str,
    basic_registry: Registry,
    token_registry: Registry,
    layout: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = basic_registry if which == "basic" else token_registry
    _use_env_creds(monkeypatch)
    a, b = unique_repo(), unique_repo()
    result = push_layout_sync(layout, [reg.ref(a, "bookworm"), reg.ref(b, "bookworm")])
    assert result.uploaded_blobs == 6 and result.mounted_blobs == 6
    assert sha256_digest(skopeo_raw(reg.ref(b, "bookworm"), CREDS)) == result.digest
    pulled = pull_to_layout_sync(reg.ref(b, "bookworm"), tmp_path / "pulled")
    assert (pulled / "blobs/sha256" / result.digest[7:]).is_file()


def test_token_flow_asks_realm_with_service_and_scopes(
    token_registry: Registry, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use_env_creds(monkeypatch)
    ts = token_registry.token_server
    assert ts is not None
    before = len(ts.requests)
    repo = unique_repo()
    push_layout_sync(layout, [token_registry.ref(repo, "t")])
    asked = ts.requests[before:]
    assert asked and all(r["authenticated"] for r in asked)
    assert any(f"repository:{repo}:pull,push" in r["scopes"] for r in asked)
    assert len(asked) <= 3  # tokens are cached and reused, not fetched per request


def test_wrong_password_is_refused(
    basic_registry: Registry, layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPROBASE_REGISTRY_USER", USER)
    monkeypatch.setenv("REPROBASE_REGISTRY_PASSWORD", "wrong")
    with pytest.raises(AuthError):
        push_layout_sync(layout, [basic_registry.ref(unique_repo(), "t")])


@pytest.mark.parametrize("kind", ["podman", "docker"])
def test_credentials_from_auth_files(
    kind: str,
    token_registry: Registry,
    layout: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = {"auth": base64.b64encode(CREDS.encode()).decode()}
    if kind == "podman":  # podman login writes $XDG_RUNTIME_DIR/containers/auth.json
        path = tmp_path / "run" / "containers" / "auth.json"
        data = {"auths": {token_registry.host: entry}}
    else:  # docker login writes ~/.docker/config.json, keys may be URLs
        path = tmp_path / "home" / ".docker" / "config.json"
        data = {"auths": {f"http://{token_registry.host}": entry}}
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    result = push_layout_sync(layout, [token_registry.ref(unique_repo(), "t")])
    assert result.uploaded_blobs == 6


@pytest.mark.parametrize("which", ["basic", "token"])
def test_credentials_never_in_output_or_logs(
    which: str,
    basic_registry: Registry,
    token_registry: Registry,
    layout: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = basic_registry if which == "basic" else token_registry
    _use_env_creds(monkeypatch)
    caplog.set_level(logging.DEBUG)
    assert main(["publish", "--debug", str(layout), reg.ref(unique_repo(), "t"), "--json"]) == 0
    # and a failing run, whose error message must not carry them either
    monkeypatch.setenv("REPROBASE_REGISTRY_PASSWORD", PASSWORD + "x")
    assert main(["publish", str(layout), reg.ref(unique_repo(), "t")]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[0])["uploaded_blobs"] >= 0
    assert "error:" in err
    text = out + err + caplog.text
    for secret in SECRETS:
        assert secret not in text
    assert "Authorization" not in text and "Bearer ey" not in text
