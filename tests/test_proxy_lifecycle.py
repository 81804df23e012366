"""Process lifecycle: the factory's contract, restarts, crashes mid-download, eviction."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.fakesnap import FakeSnapshot, sha1, sha256
from tests.proxy_fixtures import *  # noqa: F403
from tests.proxy_fixtures import BIG, RUNS, Proxy, metric

ROOT = Path(__file__).resolve().parents[1]


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cache_proxy",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_ready(proc: asyncio.subprocess.Process, port_file: Path) -> str:
    """Poll the port file, then /healthz, as the factory does."""
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            if proc.returncode is not None:
                raise AssertionError("proxy exited early")
            if port_file.exists():
                address = port_file.read_text().strip()
                try:
                    async with http.get(f"http://{address}/healthz") as resp:
                        if resp.status == 200 and await resp.text() == "ok":
                            return address
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.025)
    raise AssertionError("proxy never became ready")


async def cli(
    tmp_path: Path, fake: FakeSnapshot, *extra: str
) -> tuple[asyncio.subprocess.Process, str, Path]:
    """``python -m cache_proxy`` on a free port, cache in ``tmp_path/c``, once it is ready."""
    port_file = tmp_path / "port"
    port_file.unlink(missing_ok=True)  # a restart must not read the last run's port
    proc = await start_cli(
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        str(tmp_path / "c"),
        "--upstream",
        fake.snapshot_base,
        "--port-file",
        str(port_file),
        "--access-log",
        "none",
        *extra,
    )
    return proc, await wait_ready(proc, port_file), port_file


async def test_cli_contract_port_file_healthz_sigterm(fake: FakeSnapshot, tmp_path: Path) -> None:
    proc, address, _ = await cli(tmp_path, fake)
    assert address.startswith("127.0.0.1:") and int(address.split(":")[1]) > 0
    path = "pool/main/p/pkg0/pkg0_1.0_all.deb"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{address}/archive/debian/{RUNS[0]}/{path}") as resp,
    ):
        assert await resp.read() == fake.runs["debian"][0].files[path]
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_cli_user_error_is_one_line(tmp_path: Path) -> None:
    proc = await start_cli("--listen", "nonsense:port", "--cache-dir", str(tmp_path))
    _, err = await proc.communicate()
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0]


async def test_crash_mid_download_leaves_no_partial_blob(
    big_fake: FakeSnapshot, tmp_path: Path
) -> None:
    cache = tmp_path / "c"
    want = big_fake.runs["debian"][0].files[BIG]
    big_fake.inject(f"/file/{sha1(want)}", "slow", times=1, delay=0.05)
    proc, address, _ = await cli(tmp_path, big_fake)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{address}/archive/debian/{RUNS[0]}/{BIG}") as resp,
    ):
        await resp.content.readexactly(50_000)  # the download is under way
        assert any((cache / "tmp").iterdir())
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert not (cache / "blobs" / "sha256" / sha256(want)[:2] / sha256(want)).exists()
    proc, address, _ = await cli(tmp_path, big_fake)
    assert not any((cache / "tmp").iterdir())
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://{address}/archive/debian/{RUNS[0]}/{BIG}") as resp,
    ):
        assert sha256(await resp.read()) == sha256(want)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert (cache / "blobs" / "sha256" / sha256(want)[:2] / sha256(want)).exists()


async def test_restart_keeps_cache(fake: FakeSnapshot, make_proxy, http, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = "pool/main/p/pkg3/pkg3_1.0_all.deb"
    first: Proxy = await make_proxy(cache_dir=tmp_path / "keep")
    async with http.get(first.archive_url("debian", RUNS[0], path)) as resp:
        await resp.read()
    await first.server.stop()
    second: Proxy = await make_proxy(cache_dir=tmp_path / "keep")
    async with http.get(second.archive_url("debian", RUNS[0], path)) as resp:
        assert await resp.read() == fake.runs["debian"][0].files[path]
    assert metric(second, "hits_total") == 1
    assert fake.count("/file/*") == 1


async def test_lru_eviction_under_cap(fake: FakeSnapshot, make_proxy, http) -> None:  # type: ignore[no-untyped-def]
    run = fake.runs["debian"][0]
    pool = sorted(p for p in run.files if p.startswith("pool/"))
    one = len(run.files[pool[0]])
    proxy: Proxy = await make_proxy(max_size=3 * one + one // 2)
    for path in pool:
        async with http.get(proxy.archive_url("debian", RUNS[0], path)) as resp:
            assert await resp.read() == run.files[path]
    cache = proxy.server.proxy.cache
    await cache.evictor.settled()
    assert cache.size <= 3 * one + one // 2
    assert metric(proxy, "evictions_total") == len(pool) - 3
    async with http.get(proxy.archive_url("debian", RUNS[0], pool[0])) as resp:
        assert await resp.read() == run.files[pool[0]]  # evicted, fetched again
    assert fake.count(f"/file/{sha1(run.files[pool[0]])}") == 2
