"""The dashboard in a real browser: Debian's headless chromium takes screenshots.

The PNGs are decoded here (zlib + PNG row filters, no imaging library) and checked
for the verdict colours, so a page that renders blank or unstyled fails.
Set REPROBASE_SCREENSHOTS=DIR to keep the screenshots for a look.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from factory.common.runner import clean_env, require_tool
from factory.report import write_report
from factory.report.history import History
from factory.report.svg import VERDICT_COLOURS
from tests.report_fixtures import synthetic_records

pytestmark = pytest.mark.slow

Pixel = tuple[int, int, int]


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> list[bytearray]:
    """PNG row filters (PNG spec, section 9): None, Sub, Up, Average, Paeth."""
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + (left + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return rows


def png_pixels(path: Path) -> tuple[int, int, dict[Pixel, int]]:
    """Width, height and a colour histogram of an 8-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = bpp = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    hist: dict[Pixel, int] = {}
    for row in _unfilter(zlib.decompress(b"".join(idat)), width, height, bpp):
        for i in range(0, len(row), bpp):
            px = (row[i], row[i + 1], row[i + 2])
            hist[px] = hist.get(px, 0) + 1
    return width, height, hist


def _rgb(hex_colour: str) -> Pixel:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


def _count_near(hist: dict[Pixel, int], target: Pixel, tolerance: int = 4) -> int:
    return sum(
        n
        for px, n in hist.items()
        if all(abs(a - b) <= tolerance for a, b in zip(px, target, strict=True))
    )


def screenshot(page: Path, png: Path, profile: Path) -> None:
    chromium = require_tool("chromium")
    argv = [
        chromium,
        "--headless",
        "--no-sandbox",  # root in a container: no user namespace sandbox
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,1600",
        page.as_uri(),
    ]
    env = clean_env(keep=("HOME",))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.is_file(), proc.stderr[-2000:]
    keep = os.environ.get("REPROBASE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    with History(base / "history.sqlite") as h:
        for rec in synthetic_records():
            h.add(rec)
        write_report(h, base / "report")
    return base


def test_index_renders(report: Path) -> None:
    png = report / "index.png"
    screenshot(report / "report" / "index.html", png, report / "profile-index")
    width, height, hist = png_pixels(png)
    assert (width, height) == (1280, 1600)
    assert png.stat().st_size > 20_000
    assert len(hist) > 200  # text antialiasing, charts, badges: not a blank page
    # The verdict colours are painted (timeline cells and badges), in visible amounts.
    for verdict in ("reproducible", "differs", "error", "unchanged", "not-verified"):
        painted = _count_near(hist, _rgb(VERDICT_COLOURS[verdict]))
        assert painted > 150, f"{verdict} barely visible: {painted} pixels"
    # The dark header band is there (styles applied, not a bare document).
    assert _count_near(hist, (0x1F, 0x2A, 0x3C), 2) > 1280 * 60


def test_image_page_renders(report: Path) -> None:
    png = report / "bookworm.png"
    page = report / "report" / "images" / "debian-bookworm.html"
    screenshot(page, png, report / "profile-image")
    _, _, hist = png_pixels(png)
    assert _count_near(hist, _rgb(VERDICT_COLOURS["differs"])) > 150
    # The two size lines (amd64 blue, arm64 purple) are drawn.
    assert _count_near(hist, (0x38, 0x67, 0xD6), 24) > 300
    assert _count_near(hist, (0x8E, 0x44, 0xAD), 24) > 300
