"""A table of bad inputs for every subcommand, and how to run and judge one.

Each case runs `python -m factory.cli ARGV` in a sandbox (its own HOME, its own current
directory, inputs made by make_sandbox) and must end with exit 2, exactly one line on
stderr that starts with `error: `, no traceback, and nothing changed in the sandbox.

Run as a script to measure the whole table (tried / clean / traceback / wrong exit /
silent / noisy), optionally against another checkout of the code:

    .venv/bin/python -m tests.bad_inputs [--code DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # "{S}" is the sandbox directory
    expect: str = ""  # a piece of the error line (lower case)

    @property
    def wants_json(self) -> bool:
        return "--json" in self.argv


def c(id: str, *argv: str, expect: str = "") -> Case:
    return Case(id, argv, expect.lower())


BAD_REF = "Bad Ref!!"
NOWHERE = "127.0.0.1:1/x/y:z"  # a registry that is not there (port 1)
LOCAL = ("--listen", "127.0.0.1:0")  # where an accepted proxy would listen
CASES: tuple[Case, ...] = (
    # -- top level
    c("cli-unknown-command", "frobnicate"),
    c("cli-unknown-flag", "build", "debian:bookworm", "--frobnicate"),
    c("cli-missing-argument", "diff", "{S}/layout"),
    # -- build: pins, architectures, recipes, outputs, push targets
    c("build-date-1990", "build", "debian:bookworm", "--date", "1990-01-01", expect="2005"),
    c("build-date-before-first", "build", "debian:bookworm", "--date", "2005-03-11",
      expect="2005"),
    c("build-date-1990-mirror", "build", "debian:bookworm", "--date", "1990-01-01",
      "--mirror", "http://mirror.invalid/debian", expect="2005"),
    c("build-date-1990-record", "build", "debian:bookworm", "--date", "1990-01-01",
      "--upstream", "record", expect="2005"),
    c("build-date-future", "build", "debian:bookworm", "--date", "2999-01-01",
      expect="future"),
    c("build-date-garbage", "build", "debian:bookworm", "--date", "yesterday"),
    c("build-date-empty", "build", "debian:bookworm", "--date", ""),
    c("build-snapshot-empty", "build", "debian:bookworm", "--snapshot", ""),
    c("build-snapshot-bad", "build", "debian:bookworm", "--snapshot", "20261301T000000Z"),
    c("build-snapshot-1990", "build", "debian:bookworm", "--snapshot", "19900101T000000Z",
      expect="2005"),
    c("build-arch-empty", "build", "debian:bookworm", "--arch", "", expect="arch"),
    c("build-arch-commas", "build", "debian:bookworm", "--arch", ",", expect="arch"),
    c("build-arch-unknown", "build", "debian:bookworm", "--arch", "sparc", expect="sparc"),
    c("build-recipe-unknown", "build", "debian:potato", expect="potato"),
    c("build-recipe-binary", "build", "{S}/binary.toml"),
    c("build-recipe-dir", "build", "{S}/adir"),
    c("build-compression-bad", "build", "debian:bookworm", "--compression", "lzma"),
    c("build-output-proc", "build", "debian:bookworm", "--output", "/proc/x"),
    c("build-output-under-file", "build", "debian:bookworm", "--output", "{S}/file.txt/sub"),
    c("build-output-foreign", "build", "debian:bookworm", "--output", "{S}/mine"),
    c("build-push-bad-ref", "build", "debian:bookworm", "--push", BAD_REF),
    c("build-push-unreachable", "build", "debian:bookworm", "--push", NOWHERE,
      expect="127.0.0.1:1"),
    c("build-push-once", "build", "debian:bookworm", "--push", NOWHERE, "--once"),
    c("build-mirror-not-url", "build", "debian:bookworm", "--mirror", "not a url"),
    c("build-proxy-not-url", "build", "debian:bookworm", "--proxy", "ftp://x"),
    c("build-security-without-mirror", "build", "debian:bookworm",
      "--security-mirror", "http://mirror.invalid/debian-security"),
    c("build-cache-dir-file", "build", "debian:bookworm", "--cache-dir", "{S}/file.txt"),
    c("build-json-error", "build", "debian:bookworm", "--date", "1990-01-01", "--json"),
    c("build-snapshot-future", "build", "debian:bookworm", "--snapshot", "29990101T000000Z",
      expect="future"),
    c("build-snapshot-date-form", "build", "debian:bookworm", "--snapshot", "2026-11-29"),
    c("build-arch-one-bad", "build", "debian:bookworm", "--arch", "amd64,sparc",
      expect="sparc"),
    c("build-output-empty", "build", "debian:bookworm", "--output", ""),
    c("build-output-home", "build", "debian:bookworm", "--output", "{S}/home"),
    c("build-output-root", "build", "debian:bookworm", "--output", "/"),
    c("build-push-empty", "build", "debian:bookworm", "--push", ""),
    c("build-push-port-range", "build", "debian:bookworm", "--push", "127.0.0.1:99999/x/y:z"),
    c("build-proxy-unreachable", "build", "debian:bookworm", "--once", "--proxy",
      "http://127.0.0.1:1/", "--upstream", "record", "--output", "{S}/out",
      expect="127.0.0.1:1"),
    c("build-mirror-unreachable", "build", "debian:bookworm", "--once", "--mirror",
      "http://127.0.0.1:1/debian", "--security-mirror", "none", "--output", "{S}/out",
      expect="127.0.0.1:1"),
    c("build-upstream-bogus", "build", "debian:bookworm", "--upstream", "ftp"),
    c("build-cache-dir-proc", "build", "debian:bookworm", "--cache-dir", "/proc/x"),
    c("build-cache-dir-empty", "build", "debian:bookworm", "--cache-dir", ""),
    # -- diff
    c("diff-corrupt-index", "diff", "{S}/corrupt", "{S}/layout", expect="index.json"),
    c("diff-bad-ref", "diff", "{S}/layout", BAD_REF),
    c("diff-text-file", "diff", "{S}/layout", "{S}/file.txt"),
    c("diff-missing", "diff", "{S}/layout", "{S}/nothing-here"),
    c("diff-truncated-layer", "diff", "{S}/truncated", "{S}/layout", expect="corrupt"),
    c("diff-truncated-self", "diff", "{S}/truncated", "{S}/truncated", expect="corrupt"),
    c("diff-json-error", "diff", "{S}/corrupt", "{S}/layout", "--json"),
    c("diff-limit-negative", "diff", "{S}/layout", "{S}/layout", "--limit", "-1"),
    c("diff-no-such-tag", "diff", "{S}/layout:nosuchtag", "{S}/layout", expect="nosuchtag"),
    c("diff-gzip-garbage", "diff", "{S}/layout", "{S}/garbage.tar.gz"),
    c("diff-truncated-tar", "diff", "{S}/layout", "{S}/truncated.tar"),
    # -- publish
    c("publish-corrupt-index", "publish", "{S}/corrupt", NOWHERE, expect="index.json"),
    c("publish-bad-ref", "publish", "{S}/layout", BAD_REF),
    c("publish-ref-odd-chars", "publish", "{S}/layout", "127.0.0.1:5000/a b/c:d"),
    c("publish-ref-empty", "publish", "{S}/layout", ""),
    c("publish-bad-tag", "publish", "{S}/layout", NOWHERE, "--tag", "bad tag", expect="tag"),
    c("publish-archive-proc", "publish", "{S}/layout", "--output-archive", "/proc/x",
      "--archive-name", "x/y:z"),
    c("publish-archive-under-file", "publish", "{S}/layout", "--output-archive",
      "{S}/file.txt/sub", "--archive-name", "x/y:z"),
    c("publish-archive-is-dir", "publish", "{S}/layout", "--output-archive", "{S}/mine",
      "--archive-name", "x/y:z"),
    c("publish-archive-foreign-file", "publish", "{S}/layout", "--output-archive",
      "{S}/file.txt", "--archive-name", "x/y:z"),
    c("publish-archive-bad-name", "publish", "{S}/layout", "--output-archive", "{S}/o.tar",
      "--archive-name", BAD_REF),
    c("publish-archive-truncated", "publish", "{S}/truncated", "--output-archive",
      "{S}/o.tar", "--archive-name", "x/y:z", expect="corrupt"),
    c("publish-not-layout", "publish", "{S}/adir", NOWHERE),
    c("publish-json-error", "publish", "{S}/corrupt", NOWHERE, "--json"),
    c("publish-no-such-tag", "publish", "{S}/layout:nosuchtag", NOWHERE, expect="nosuchtag"),
    c("publish-archive-empty", "publish", "{S}/layout", "--output-archive", "",
      "--archive-name", "x/y:z"),
    c("publish-archive-home", "publish", "{S}/layout", "--output-archive", "{S}/home",
      "--archive-name", "x/y:z"),
    # -- reproduce / verify
    c("reproduce-corrupt-index", "reproduce", "{S}/corrupt", expect="index.json"),
    # -- verify (the quorum of signed rebuild attestations), sbom, key
    c("verify-corrupt-index", "verify", "{S}/corrupt", "--trust", "{S}/trust",
      expect="index.json"),
    c("verify-no-trust", "verify", "{S}/layout"),
    c("verify-trust-missing", "verify", "{S}/layout", "--trust", "{S}/nothere",
      expect="not a directory"),
    c("verify-trust-empty", "verify", "{S}/layout", "--trust", "{S}/adir", expect=".pub"),
    c("verify-trust-not-pem", "verify", "{S}/layout", "--trust", "{S}/badtrust",
      expect="not a pem"),
    c("verify-require-too-many", "verify", "{S}/layout", "--trust", "{S}/trust",
      "--require", "3", expect="only 1"),
    c("verify-require-zero", "verify", "{S}/layout", "--trust", "{S}/trust", "--require", "0"),
    c("verify-json-error", "verify", "{S}/corrupt", "--trust", "{S}/trust", "--json"),
    c("sbom-none-attached", "sbom", "{S}/layout", expect="no sbom is attached"),
    c("sbom-truncated-layer", "sbom", "{S}/truncated", expect="cannot be read"),
    c("sbom-corrupt-index", "sbom", "{S}/corrupt", "--format", "cyclonedx", expect="index.json"),
    c("sbom-bad-format", "sbom", "{S}/layout", "--format", "xml"),
    c("sbom-not-layout", "sbom", "oci:{S}/nothere", expect="no such"),
    c("key-no-action", "key"),
    c("key-generate-exists", "key", "generate", "--output", "{S}/trust/rebuilder",
      expect="exists"),
    c("key-generate-no-dir", "key", "generate", "--output", "{S}/nothere/k",
      expect="does not exist"),
    c("key-generate-bad-type", "key", "generate", "--type", "rsa", "--output", "{S}/k"),
    c("key-id-not-pem", "key", "id", "{S}/file.txt", expect="not a pem"),
    c("reproduce-attest-no-key", "reproduce", "{S}/layout", "--attest", expect="--key"),
    c("reproduce-key-no-attest", "reproduce", "{S}/layout", "--key", "{S}/file.txt",
      expect="--attest"),
    c("reproduce-attest-bad-key", "reproduce", "{S}/layout", "--attest", "--key",
      "{S}/file.txt", expect="not a pem"),
    c("build-key-not-pem", "build", "debian:bookworm", "--key", "{S}/file.txt",
      expect="not a pem"),
    c("build-sign-command-no-key", "build", "debian:bookworm", "--sign-command", "true",
      expect="--key"),
    c("reproduce-bad-ref", "reproduce", BAD_REF),
    c("reproduce-not-ours", "reproduce", "{S}/layout"),
    c("reproduce-mirror-not-url", "reproduce", "{S}/layout", "--mirror", "not a url"),
    c("reproduce-json-error", "reproduce", "{S}/corrupt", "--json"),
    # -- merge
    c("merge-corrupt-index", "merge", "{S}/corrupt", "--output", "{S}/out",
      expect="index.json"),
    c("merge-missing", "merge", "{S}/nothing-here", "--output", "{S}/out"),
    c("merge-file-input", "merge", "{S}/file.txt", "--output", "{S}/out"),
    c("merge-output-proc", "merge", "{S}/layout", "--output", "/proc/x"),
    c("merge-output-under-file", "merge", "{S}/layout", "--output", "{S}/file.txt/sub"),
    c("merge-output-foreign", "merge", "{S}/layout", "--output", "{S}/mine"),
    c("merge-output-cwd", "merge", "{S}/layout", "--output", "."),
    c("merge-truncated", "merge", "{S}/ours-truncated", "--output", "{S}/out",
      expect="corrupt"),
    c("merge-json-error", "merge", "{S}/corrupt", "--output", "{S}/out", "--json"),
    c("merge-output-empty", "merge", "{S}/layout", "--output", ""),
    c("merge-output-home", "merge", "{S}/layout", "--output", "{S}/home"),
    c("merge-no-such-tag", "merge", "{S}/layout:nosuchtag", "--output", "{S}/out",
      expect="nosuchtag"),
    # -- nightly
    c("nightly-config-binary", "nightly", "--config", "{S}/binary.toml"),
    c("nightly-config-dir", "nightly", "--config", "{S}/adir"),
    c("nightly-config-missing", "nightly", "--config", "{S}/nothing.toml"),
    c("nightly-only-unknown", "nightly", "--config", "{S}/nightly.toml", "--only",
      "debian:potato", expect="potato"),
    c("nightly-arch-unknown", "nightly", "--config", "{S}/nightly.toml", "--arch", "sparc",
      expect="sparc"),
    c("nightly-arch-empty", "nightly", "--config", "{S}/nightly.toml", "--arch", ""),
    c("nightly-date-1990", "nightly", "--config", "{S}/nightly.toml", "--date", "1990-01-01",
      expect="2005"),
    c("nightly-date-future", "nightly", "--config", "{S}/nightly.toml", "--date",
      "2999-01-01"),
    c("nightly-config-arch-unknown", "nightly", "--config", "{S}/badarch.toml",
      expect="sparc"),
    c("nightly-config-image-unknown", "nightly", "--config", "{S}/badimage.toml",
      expect="potato"),
    c("nightly-config-publish-bad", "nightly", "--config", "{S}/badpublish.toml"),
    c("nightly-output-layout-proc", "nightly", "--config", "{S}/nightly.toml", "--only",
      "debian:bookworm", "--output-layout", "/proc/x"),
    c("nightly-output-layout-foreign", "nightly", "--config", "{S}/nightly.toml", "--only",
      "debian:bookworm", "--output-layout", "{S}/mine"),
    c("nightly-output-layout-two", "nightly", "--config", "{S}/nightly.toml",
      "--output-layout", "{S}/out"),
    c("nightly-report-foreign", "nightly", "--config", "{S}/foreignreport.toml"),
    c("nightly-json-error", "nightly", "--config", "{S}/nightly.toml", "--date",
      "1990-01-01", "--json"),
    c("nightly-only-empty", "nightly", "--config", "{S}/nightly.toml", "--only", ""),
    c("nightly-date-empty", "nightly", "--config", "{S}/nightly.toml", "--date", ""),
    c("nightly-config-no-images", "nightly", "--config", "{S}/noimages.toml"),
    c("nightly-config-store-proc", "nightly", "--config", "{S}/storeproc.toml"),
    c("nightly-config-history-unrelated", "nightly", "--config", "{S}/unrelatedhist.toml"),
    # -- report
    c("report-history-missing", "report", "--history", "{S}/nothing.sqlite", "--output",
      "{S}/rep"),
    c("report-history-unrelated", "report", "--history", "{S}/unrelated.sqlite",
      "--output", "{S}/rep"),
    c("report-history-text", "report", "--history", "{S}/file.txt", "--output", "{S}/rep"),
    c("report-output-proc", "report", "--history", "{S}/history.sqlite", "--output",
      "/proc/x"),
    c("report-output-under-file", "report", "--history", "{S}/history.sqlite", "--output",
      "{S}/file.txt/sub"),
    c("report-output-foreign", "report", "--history", "{S}/history.sqlite", "--output",
      "{S}/mine"),
    c("report-output-file", "report", "--history", "{S}/history.sqlite", "--output",
      "{S}/file.txt"),
    c("report-output-cwd", "report", "--history", "{S}/history.sqlite", "--output", "."),
    c("report-output-home", "report", "--history", "{S}/history.sqlite", "--output",
      "{S}/home"),
    c("report-config-binary", "report", "--config", "{S}/binary.toml"),
    c("report-config-dir", "report", "--config", "{S}/adir"),
    c("report-config-unknown-key", "report", "--config", "{S}/unknownkey.toml",
      expect="unknown"),
    c("report-json-error", "report", "--history", "{S}/nothing.sqlite", "--json"),
    c("report-output-empty", "report", "--history", "{S}/history.sqlite", "--output", ""),
    c("report-history-dir", "report", "--history", "{S}/adir", "--output", "{S}/rep"),
    # -- schedule
    c("schedule-prefix-proc", "schedule", "install", "--systemd", "--no-enable",
      "--config", "{S}/nightly.toml", "--prefix", "/proc/x"),
    c("schedule-prefix-file", "schedule", "install", "--systemd", "--no-enable",
      "--config", "{S}/nightly.toml", "--prefix", "{S}/file.txt"),
    c("schedule-prefix-under-file", "schedule", "install", "--cron",
      "--config", "{S}/nightly.toml", "--prefix", "{S}/file.txt/sub"),
    c("schedule-config-missing", "schedule", "install", "--systemd", "--no-enable",
      "--config", "{S}/nothing.toml", "--prefix", "{S}/units"),
    c("schedule-dry-run-config-missing", "schedule", "install", "--systemd", "--dry-run",
      "--config", "{S}/nothing.toml"),
    c("schedule-config-binary", "schedule", "install", "--systemd", "--no-enable",
      "--config", "{S}/binary.toml", "--prefix", "{S}/units"),
    c("schedule-no-action", "schedule"),
    c("schedule-config-space", "schedule", "show", "--config", "{S}/a b.toml"),
    # -- proxy
    c("proxy-listen-foreign-address", "proxy", "--listen", "203.0.113.7:3142",
      "--cache-dir", "{S}/cache"),
    c("proxy-listen-garbage", "proxy", "--listen", "nowhere", "--cache-dir", "{S}/cache"),
    c("proxy-listen-port-range", "proxy", "--listen", "127.0.0.1:70000",
      "--cache-dir", "{S}/cache"),
    c("proxy-max-size-zero", "proxy", *LOCAL, "--max-size", "0", "--cache-dir", "{S}/cache"),
    c("proxy-max-size-negative", "proxy", *LOCAL, "--max-size", "-5G", "--cache-dir", "{S}/cache"),
    c("proxy-read-timeout-negative", "proxy", *LOCAL, "--read-timeout", "-1",
      "--cache-dir", "{S}/cache"),
    c("proxy-retries-negative", "proxy", *LOCAL, "--retries", "-3", "--cache-dir", "{S}/cache"),
    c("proxy-backoff-negative", "proxy", *LOCAL, "--backoff", "-1", "--cache-dir", "{S}/cache"),
    c("proxy-connections-zero", "proxy", *LOCAL, "--per-host-connections", "0",
      "--cache-dir", "{S}/cache"),
    c("proxy-volatile-negative", "proxy", *LOCAL, "--volatile-hours", "-1",
      "--cache-dir", "{S}/cache"),
    c("proxy-workers-zero", "proxy", *LOCAL, "--workers", "0", "--cache-dir", "{S}/cache"),
    c("proxy-cache-dir-file", "proxy", *LOCAL, "--cache-dir", "{S}/file.txt"),
    c("proxy-upstream-not-url", "proxy", *LOCAL, "--upstream", "not a url", "--cache-dir",
      "{S}/cache"),
    c("proxy-port-file-proc", "proxy", "--listen", "127.0.0.1:0", "--port-file",
      "/proc/x/port", "--cache-dir", "{S}/cache"),
    c("proxy-access-log-proc", "proxy", "--listen", "127.0.0.1:0", "--access-log",
      "/proc/x/log", "--cache-dir", "{S}/cache"),
    c("proxy-cache-dir-empty", "proxy", *LOCAL, "--cache-dir", ""),
    c("proxy-port-file-foreign", "proxy", *LOCAL, "--cache-dir", "{S}/cache", "--port-file",
      "{S}/file.txt"),
    c("proxy-listen-empty-port", "proxy", "--listen", "127.0.0.1:", "--cache-dir",
      "{S}/cache"),
    c("proxy-workers-many", "proxy", *LOCAL, "--workers", "1000", "--cache-dir", "{S}/cache"),
    c("proxy-max-size-garbage", "proxy", *LOCAL, "--max-size", "lots", "--cache-dir",
      "{S}/cache"),
    c("proxy-upstream-ftp", "proxy", *LOCAL, "--upstream", "ftp://x/", "--cache-dir",
      "{S}/cache"),
)  # fmt: skip


# -- the sandbox ----------------------------------------------------------------------
def _nightly_toml(state: Path, **over: str) -> str:
    keys = {
        "images": '["debian:bookworm"]',
        "architectures": '["amd64"]',
        "upstream": '"record"',
        "history": f'"{state}/history.sqlite"',
        "report": f'"{state}/report"',
        "cache_dir": f'"{state}/cache"',
    } | over
    return "[nightly]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


TRUSTED_PUB = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAFmTmLSgaIaFo5edjTNuvlU6o6wsAA/UmiT3z2z49i+E=
-----END PUBLIC KEY-----
"""


def make_sandbox(root: Path) -> None:
    """Every input the table refers to, under root (also HOME and the current dir)."""
    from factory.image import oci
    from factory.report.history import History
    from tests.registry_fixtures import make_layout
    from tests.report_fixtures import synthetic_records

    (root / "home").mkdir()
    (root / "home" / ".profile").write_text("# the user's\n")
    (root / "work").mkdir()
    (root / "work" / "project.txt").write_text("the user's work\n")
    (root / "adir").mkdir()
    (root / "adir" / "x").write_text("x\n")
    (root / "mine" / "sub").mkdir(parents=True)
    (root / "mine" / "notes.txt").write_text("my notes\n")
    (root / "file.txt").write_text("just a file\n")
    (root / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (root / "trust").mkdir()  # verify --trust: one rebuilder's public key
    (root / "trust" / "rebuilder.pub").write_text(TRUSTED_PUB)
    (root / "badtrust").mkdir()
    (root / "badtrust" / "broken.pub").write_text("not a key\n")
    make_layout(root / "layout", platforms=("amd64",), layer_sizes=(1000,))
    make_layout(root / "corrupt", platforms=("amd64",), layer_sizes=(1000,))
    (root / "corrupt" / "index.json").write_text('{"manifests": [')
    for name, ours in (("truncated", False), ("ours-truncated", True)):
        top = make_layout(root / name, platforms=("amd64",), layer_sizes=(5000,), seed=3)
        if ours:  # reprobase's annotations, so that merge accepts it as a build output
            index = oci.read_json_blob(root / name, top.digest)
            index["annotations"] = {"org.reprobase.recipe": "{}"}
            oci.blob_path(root / name, top.digest).unlink()
            top = oci.write_json_blob(root / name, index, oci.MT_INDEX)
            oci.write_index(root / name, [top], {})
        for _d, man in oci.iter_manifests(root / name, oci.read_index(root / name)):
            blob = oci.blob_path(root / name, man["layers"][0]["digest"])
            blob.write_bytes(blob.read_bytes()[:200])
    (root / "garbage.tar.gz").write_bytes(b"\x1f\x8b" + bytes(range(200)))
    whole = (root / "layout" / "index.json").read_bytes()
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("index.json")
        info.size = len(whole)
        tar.addfile(info, io.BytesIO(whole))
    (root / "truncated.tar").write_bytes(buf.getvalue()[:700])
    state = root / "state"
    (root / "nightly.toml").write_text(_nightly_toml(state))
    (root / "badarch.toml").write_text(_nightly_toml(state, architectures='["sparc"]'))
    (root / "badimage.toml").write_text(_nightly_toml(state, images='["debian:potato"]'))
    (root / "badpublish.toml").write_text(_nightly_toml(state, publish=f'["{BAD_REF}"]'))
    (root / "foreignreport.toml").write_text(_nightly_toml(state, report=f'"{root}/mine"'))
    (root / "noimages.toml").write_text(_nightly_toml(state, images="[]"))
    (root / "storeproc.toml").write_text(_nightly_toml(state, publish='["oci:/proc/x"]'))
    (root / "unrelatedhist.toml").write_text(
        _nightly_toml(state, history=f'"{root}/unrelated.sqlite"')
    )
    (root / "unknownkey.toml").write_text(
        f'[nightly]\nhistory = "{root}/history.sqlite"\nreprot = "{root}/rep"\n'
    )
    with History(root / "history.sqlite") as h:
        for rec in synthetic_records()[:6]:
            h.add(rec)
    db = sqlite3.connect(root / "unrelated.sqlite")
    with db:
        db.execute("CREATE TABLE recipes (name TEXT, body TEXT)")
        db.execute("INSERT INTO recipes VALUES ('soup', 'water')")
    db.close()


def tree_state(root: Path) -> dict[str, str]:
    """Path -> type and content hash, for everything under root."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "link"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# -- running and judging one case ------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    case: Case
    returncode: int | None  # None: still running at the timeout (the input was accepted)
    stdout: str
    stderr: str
    changed: tuple[str, ...]  # sandbox paths created, changed or removed

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]

    @property
    def verdict(self) -> str:
        if "Traceback (most recent call last)" in self.stderr:
            return "traceback"
        if self.returncode is None or self.returncode == 0:
            return "silent"
        if self.returncode != 2:
            return "wrong-exit"
        lines = self.error_lines
        if len(lines) != 1 or not lines[0].startswith("error: "):
            return "noisy"
        if self.changed:
            return "changed-disk"
        if self.case.expect and self.case.expect not in lines[0].lower():
            return "unexpected-message"
        if self.case.wants_json and not _json_error(self.stdout):
            return "no-json-error"
        return "clean"


def _json_error(stdout: str) -> bool:
    try:
        doc = json.loads(stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("error"), str)


def run_case(case: Case, root: Path, *, code: Path = REPO, timeout: float = 30) -> Outcome:
    """Run one case in a fresh copy of the sandbox at root/<case id>."""
    sandbox = root / case.id
    sandbox.mkdir()
    make_sandbox(sandbox)
    before = tree_state(sandbox)
    argv = [a.replace("{S}", str(sandbox)) for a in case.argv]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(sandbox / "home"),
        "PYTHONPATH": str(code),
        "LC_ALL": "C.UTF-8",
        "REPROBASE_PROXY_LOOP": "asyncio",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory.cli", *argv],
        cwd=sandbox / "work",
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    after = tree_state(sandbox)
    changed = tuple(
        sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    )
    return Outcome(case, rc, out, err, changed)


def measure(code: Path, jobs: int = 4) -> list[Outcome]:
    with (
        tempfile.TemporaryDirectory(prefix="reprobase-bad-") as tmp,
        ThreadPoolExecutor(jobs) as pool,
    ):
        return list(pool.map(lambda case: run_case(case, Path(tmp), code=code), CASES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=REPO, help="checkout whose factory to run")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every case")
    args = ap.parse_args()
    outcomes = measure(args.code.resolve())
    tally = Counter(o.verdict for o in outcomes)
    for o in outcomes:
        if args.verbose or o.verdict != "clean":
            last = o.error_lines[-1] if o.error_lines else ""
            print(f"{o.verdict:<18} {o.case.id:<34} rc={o.returncode} {last[:110]}")
    print(f"tried {len(outcomes)}: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))


if __name__ == "__main__":
    main()
