"""A fixed synthetic history: two images, two architectures, ten nights.

Deterministic (no clock, no randomness) so that the report made from it can be
compared with golden files. It covers every verdict, package upgrades, additions
and removals, a failed build without digests, and re-verification rows.
"""

from __future__ import annotations

from factory.report.history import Package, ResultRecord, package_set_key

BASE_BOOKWORM: tuple[Package, ...] = (
    ("apt", "2.6.1", "amd64"),
    ("base-files", "12.4+deb12u8", "amd64"),
    ("bash", "5.2.15-2+b7", "amd64"),
    ("coreutils", "9.1-1", "amd64"),
    ("dpkg", "1.21.22", "amd64"),
    ("libc6", "2.36-9+deb12u9", "amd64"),
    ("libssl3", "3.0.15-1~deb12u1", "amd64"),
    ("tzdata", "2024b-0+deb12u1", "all"),
)


def _with_arch(pkgs: tuple[Package, ...], arch: str) -> tuple[Package, ...]:
    return tuple((n, v, a if a == "all" else arch) for n, v, a in pkgs)


def _bookworm_set(night: int) -> tuple[Package, ...]:
    """Night 0..9: libc6 upgrade on night 3, libssl3 + tzdata on 6, a swap on 8."""
    pkgs = dict((p[0], p) for p in BASE_BOOKWORM)
    if night >= 3:
        pkgs["libc6"] = ("libc6", "2.36-9+deb12u10", "amd64")
    if night >= 6:
        pkgs["libssl3"] = ("libssl3", "3.0.16-1~deb12u1", "amd64")
        pkgs["tzdata"] = ("tzdata", "2025a-0+deb12u1", "all")
    if night >= 8:
        del pkgs["coreutils"]
        pkgs["coreutils-from-uutils"] = ("coreutils-from-uutils", "0.1.0-1", "amd64")
    return tuple(sorted(pkgs.values()))


def _digest(tag: str) -> str:
    # A readable fake: "sha256:" + 64 hex characters derived from the tag.
    return package_set_key([(tag, "", "")])


def _record(
    image: str,
    arch: str,
    night: int,
    verdict: str,
    pkgs: tuple[Package, ...],
    *,
    kind: str = "nightly",
    run_day: int | None = None,
    message: str = "",
) -> ResultRecord:
    day = 20 + night
    snapshot = f"202611{day:02d}T000000Z"
    run = day if run_day is None else run_day
    tag = image.split(":")[1]
    built = verdict != "error"
    size = 29_000_000 + 150_000 * night + (1_000_000 if arch == "arm64" else 0)
    if tag.endswith("slim"):
        size //= 2
    started = f"2026-11-{run:02d}T01:{35 + (5 if arch == 'arm64' else 0):02d}:00Z"
    finished = f"2026-11-{run:02d}T01:{39 + (5 if arch == 'arm64' else 0):02d}:12Z"
    published: tuple[str, ...] = ()
    if verdict in ("reproducible", "unchanged") and kind == "nightly":
        published = (f"oci:/var/lib/reprobase/store:{tag}-202611{day:02d}",)
    digest = _digest(f"{image}/{arch}/{night}")
    return ResultRecord(
        run_id=f"202611{run:02d}T013000Z-{run:08x}",
        kind=kind,
        image=image,
        arch=arch,
        snapshot=snapshot,
        verdict=verdict,
        index_digest=_digest(f"{image}/{night}/index") if built else None,
        manifest_digest=digest if built else None,
        digest_b=(
            None
            if verdict in ("error", "not-verified", "unchanged")
            else digest
            if verdict == "reproducible"
            else _digest(f"{image}/{arch}/{night}/b")
        ),
        size=size if built else None,
        uncompressed_size=size * 27 // 10 if built else None,
        packages_digest=package_set_key(pkgs) if built else None,
        packages=pkgs if built else (),
        published=published,
        upstream_bytes=(41_000_000 if night == 0 else 2_500_000 * (night % 3)) if built else 0,
        durations={"build_a": 142.5 + night, "build_b": 151.25 + night, "compare": 0.75}
        if built
        else {"build_a": 12.0},
        started=started,
        finished=finished,
        message=message,
    )


def synthetic_records() -> list[ResultRecord]:
    """All records in the order a nightly would add them (oldest first)."""
    recs: list[ResultRecord] = []
    for night in range(10):
        for arch in ("amd64", "arm64"):
            pkgs = _with_arch(_bookworm_set(night), arch)
            verdict = "reproducible"
            message = ""
            if night in (1, 2, 4, 5, 7, 9):
                verdict = "unchanged"  # same package set as the night before: re-tagged
            if arch == "arm64" and night == 4:
                verdict = "differs"
                message = "usr/share/info/dir: contents differ (order of entries)"
            if arch == "amd64" and night == 7:
                verdict = "error"
                message = "mmdebstrap failed with exit code 1: E: Unable to fetch libc6"
            recs.append(_record("debian:bookworm", arch, night, verdict, pkgs, message=message))
        slim = _with_arch(_bookworm_set(min(night, 5)), "amd64")[:5]
        verdict = "not-verified" if night == 2 else "reproducible"
        recs.append(_record("debian:trixie-slim", "amd64", night, verdict, slim))
    # Re-verification of older published images on the last night.
    for night in (0, 3):
        pkgs = _with_arch(_bookworm_set(night), "amd64")
        recs.append(
            _record(
                "debian:bookworm", "amd64", night, "reproducible", pkgs, kind="reverify", run_day=29
            )
        )
    return recs


def hostile_record() -> ResultRecord:
    """A record whose every free-text field tries to inject markup."""
    return ResultRecord(
        run_id='"><img src=x onerror=alert(1)>',
        kind="nightly",
        image="evil:<script>alert('x')</script>",
        arch="amd64&<b>",
        snapshot="20261129T000000Z",
        verdict="differs",
        index_digest="sha256:<i>",
        manifest_digest="sha256:</td>",
        digest_b=None,
        size=1,
        uncompressed_size=2,
        packages_digest=None,
        packages=(("<svg onload=alert(1)>", "1.0&amp;", "amd64"),),
        published=("javascript:alert(1)",),
        upstream_bytes=None,
        durations={"<stage>": 1.0},
        started="2026-11-29T01:30:00Z",
        finished="2026-11-29T01:31:00Z",
        message="</pre><script>alert('message')</script>",
    )
