"""Pure logic of the distribution client, and small fake-server tests (retries, referrers API)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from factory.common.canonical import sha256_digest
from factory.common.errors import UserError
from factory.image.oci import MT_INDEX, MT_MANIFEST, Descriptor
from factory.registry import (
    ClientConfig,
    attach_referrer,
    fallback_tag,
    parse_reference,
    push_layout,
)
from factory.registry.auth import Credentials, parse_challenges, resolve_credentials
from factory.registry.layout import plan_push, select_top
from factory.registry.push import _tags_for
from factory.registry.referrers import EMPTY_DESCRIPTOR, add_to_referrers_index, artifact_manifest
from tests.registry_fixtures import make_layout


@pytest.mark.parametrize(
    ("text", "registry", "repo", "tag", "digest"),
    [
        ("127.0.0.1:5000/debian:bookworm", "127.0.0.1:5000", "debian", "bookworm", None),
        ("localhost/a/b", "localhost", "a/b", "latest", None),
        ("debian", "docker.io", "library/debian", "latest", None),
        ("user/img:1.0", "docker.io", "user/img", "1.0", None),
        ("docker.io/debian:12", "docker.io", "library/debian", "12", None),
        ("ghcr.io/o/r@sha256:" + "a" * 64, "ghcr.io", "o/r", None, "sha256:" + "a" * 64),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
    ],
)
def test_parse_reference(
    text: str, registry: str, repo: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


def test_reference_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_reference("127.0.0.1:5000/a").base_url == "http://127.0.0.1:5000"
    assert parse_reference("[::1]:5000/a").base_url == "http://[::1]:5000"
    assert parse_reference("debian").base_url == "https://registry-1.docker.io"
    assert parse_reference("reg.example:5000/a").base_url == "https://reg.example:5000"
    monkeypatch.setenv("REPROBASE_INSECURE_REGISTRIES", "reg.example:5000, other")
    assert parse_reference("reg.example:5000/a").base_url == "http://reg.example:5000"


@pytest.mark.parametrize("bad", ["", "UPPER/case", "a/b:c:d", "x@sha256:zz"])
def test_parse_reference_rejects(bad: str) -> None:
    with pytest.raises(UserError):
        parse_reference(bad)


def test_parse_challenges() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push", Basic realm="x"'
    )
    bearer, basic = parse_challenges(header)
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert basic.scheme == "basic" and basic.params == {"realm": "x"}
    assert (
        parse_challenges('Basic realm="a \\"quoted\\" realm"')[0].params["realm"]
        == 'a "quoted" realm'
    )


def _auth(user: str, pw: str) -> str:
    return base64.b64encode(f"{user}:{pw}".encode()).decode()


def test_credentials_order_and_files(tmp_path: Path) -> None:
    docker = tmp_path / "home" / ".docker" / "config.json"
    docker.parent.mkdir(parents=True)
    docker.write_text(
        json.dumps(
            {"auths": {"https://index.docker.io/v1/": {"auth": _auth("hub", "h")}, "reg:5000": {}}}
        )
    )
    podman = tmp_path / "run" / "containers" / "auth.json"
    podman.parent.mkdir(parents=True)
    podman.write_text(
        json.dumps(
            {
                "auths": {
                    "reg:5000": {"auth": _auth("host", "p1")},
                    "reg:5000/team/app": {"auth": _auth("repo", "p2")},
                }
            }
        )
    )
    home = tmp_path / "home"
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run")}
    hub = resolve_credentials("docker.io", "library/debian", env, home)
    assert hub is not None and (hub.username, hub.password) == ("hub", "h")
    host = resolve_credentials("reg:5000", "other", env, home)
    assert host is not None and host.username == "host"
    repo = resolve_credentials("reg:5000", "team/app", env, home)
    assert repo is not None and repo.username == "repo"
    assert resolve_credentials("elsewhere", "x", env, home) is None
    env_creds = {**env, "REPROBASE_REGISTRY_USER": "u", "REPROBASE_REGISTRY_PASSWORD": "pw"}
    assert resolve_credentials("reg:5000", "x", env_creds, home) == Credentials(
        "u", "pw", "$REPROBASE_REGISTRY_USER"
    )
    explicit = tmp_path / "explicit.json"
    explicit.write_text(json.dumps({"auths": {"reg:5000": {"username": "e", "password": "x"}}}))
    first = resolve_credentials("reg:5000", "x", {**env, "REGISTRY_AUTH_FILE": str(explicit)}, home)
    assert first is not None and first.username == "e"


def test_secrets_hidden_from_repr() -> None:
    creds = Credentials("user", "hunter2-secret")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)


def test_plan_push_order_and_selection(tmp_path: Path) -> None:
    top = make_layout(tmp_path, layer_sizes=(1000,))
    plan = plan_push(tmp_path)
    assert plan.manifests[-1].descriptor.digest == top.digest
    assert [m.descriptor.media_type for m in plan.manifests] == [MT_MANIFEST, MT_MANIFEST, MT_INDEX]
    assert len(plan.blobs) == 4  # two configs, two layers
    index = {
        "manifests": [
            Descriptor(
                MT_INDEX, top.digest, top.size, {"org.opencontainers.image.ref.name": n}
            ).to_json()
            for n in ("a", "b")
        ]
    }
    assert (
        select_top(index, ["b"], tmp_path).annotations["org.opencontainers.image.ref.name"] == "b"
    )
    with pytest.raises(UserError, match="2 images"):
        select_top(index, ["zzz"], tmp_path)


def test_tags_for() -> None:
    assert _tags_for(parse_reference("r/x:bookworm"), ["bookworm-20250101", "bookworm"]) == [
        "bookworm",
        "bookworm-20250101",
    ]
    assert _tags_for(parse_reference("r/x", default_tag=None), []) == ["latest"]
    assert _tags_for(parse_reference("r/x@sha256:" + "0" * 64), []) == []


def test_artifact_manifest_and_fallback_index() -> None:
    subject = Descriptor(MT_INDEX, "sha256:" + "1" * 64, 123, {"ignored": "x"})
    payload = Descriptor("application/json", sha256_digest(b"{}"), 2)
    data = artifact_manifest(subject, "application/vnd.example+json", payload, {"k": "v"})
    m = json.loads(data)
    assert m["artifactType"] == "application/vnd.example+json"
    assert m["config"] == EMPTY_DESCRIPTOR.to_json()
    assert m["subject"] == {"mediaType": MT_INDEX, "digest": subject.digest, "size": 123}
    assert fallback_tag(subject.digest) == "sha256-" + "1" * 64
    entry = Descriptor(
        MT_MANIFEST, sha256_digest(data), len(data), {"k": "v"}, None, "application/x"
    )
    first = add_to_referrers_index(None, entry)
    assert first is not None
    assert json.loads(first)["manifests"] == [entry.to_json()]
    assert add_to_referrers_index(first, entry) is None  # no duplicates


# -- fake registry: transient failures and the referrers API -----------------------------
class FakeRegistry:
    """Just enough of the distribution API, with scripted failures."""

    def __init__(
        self, fail_posts: int = 0, referrers_api: bool = False, reset_puts: int = 0
    ) -> None:
        self.fail_posts = fail_posts
        self.reset_puts = reset_puts
        self.referrers_api = referrers_api
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}
        self.calls: list[str] = []

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30)
        r = app.router
        r.add_get("/v2/", self.ping)
        r.add_route("HEAD", "/v2/{name:.+}/blobs/{digest}", self.head_blob)
        r.add_post("/v2/{name:.+}/blobs/uploads/", self.post_upload)
        r.add_put("/v2/{name:.+}/blobs/uploads/{id}", self.put_upload)
        r.add_put("/v2/{name:.+}/manifests/{ref}", self.put_manifest)
        r.add_route("HEAD", "/v2/{name:.+}/manifests/{ref}", self.head_manifest)
        r.add_get("/v2/{name:.+}/manifests/{ref}", self.get_manifest, allow_head=False)
        return app

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def head_blob(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if request.match_info["digest"] in self.blobs else 404)

    async def post_upload(self, request: web.Request) -> web.Response:
        self.calls.append("POST")
        if self.fail_posts > 0:
            self.fail_posts -= 1
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(
            status=202, headers={"Location": f"/v2/{request.match_info['name']}/blobs/uploads/u1"}
        )

    async def put_upload(self, request: web.Request) -> web.StreamResponse:
        self.calls.append("PUT")
        if self.reset_puts > 0:
            self.reset_puts -= 1
            assert request.transport is not None
            request.transport.close()  # a connection reset mid-upload
            return web.Response(status=500)
        data = await request.read()
        digest = request.query["digest"]
        assert sha256_digest(data) == digest
        self.blobs[digest] = data
        return web.Response(status=201, headers={"Docker-Content-Digest": digest})

    async def put_manifest(self, request: web.Request) -> web.Response:
        data = await request.read()
        digest = sha256_digest(data)
        self.manifests[request.match_info["ref"]] = data
        self.manifests[digest] = data
        headers = {"Docker-Content-Digest": digest}
        subject: Any = json.loads(data).get("subject")
        if self.referrers_api and subject:
            headers["OCI-Subject"] = subject["digest"]
        return web.Response(status=201, headers=headers)

    async def head_manifest(self, request: web.Request) -> web.Response:
        data = self.manifests.get(request.match_info["ref"])
        if data is None:
            return web.Response(status=404)
        return web.Response(status=200, headers={"Docker-Content-Digest": sha256_digest(data)})

    async def get_manifest(self, request: web.Request) -> web.Response:
        data = self.manifests.get(request.match_info["ref"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type=MT_INDEX)


FAST = ClientConfig(attempts=4, backoff_min=0.001, backoff_max=0.01)


async def test_retries_503_and_resets(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry(fail_posts=2, reset_puts=1)
    server = await aiohttp_server(fake.app())
    make_layout(tmp_path, platforms=("amd64",), layer_sizes=(10_000,), as_index=False)
    result = await push_layout(tmp_path, [f"127.0.0.1:{server.port}/a/b:t"], config=FAST)
    assert result.uploaded_blobs == 2
    assert fake.calls.count("POST") >= 4  # two 503s retried, one reset retried
    assert sha256_digest(fake.manifests["t"]) == result.digest


async def test_gives_up_after_attempts(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry(fail_posts=100)
    server = await aiohttp_server(fake.app())
    make_layout(tmp_path, platforms=("amd64",), layer_sizes=(10_000,), as_index=False)
    with pytest.raises(UserError, match="HTTP 503"):
        await push_layout(tmp_path, [f"127.0.0.1:{server.port}/a/b:t"], config=FAST)
    assert "t" not in fake.manifests


async def test_referrers_api_means_no_fallback_tag(aiohttp_server: Any, tmp_path: Path) -> None:
    fake = FakeRegistry(referrers_api=True)
    server = await aiohttp_server(fake.app())
    make_layout(tmp_path, platforms=("amd64",), layer_sizes=(10_000,))
    ref = f"127.0.0.1:{server.port}/a/b:t"
    result = await push_layout(tmp_path, [ref], config=FAST)
    subject = Descriptor(MT_INDEX, result.digest, len(fake.manifests["t"]))
    digest = await attach_referrer(ref, subject, "application/x", b"{}", "application/json", {})
    assert digest in fake.manifests
    assert fallback_tag(result.digest) not in fake.manifests
