import datetime as dt

import pytest

from factory.cli import main
from factory.common.errors import UserError
from factory.source.snapshot import Timestamp, resolve_pin, snapshot_sources

NOW = dt.datetime(2026, 11, 29, 4, 30, tzinfo=dt.UTC)


def test_date_pins_midnight_utc() -> None:
    ts = resolve_pin("2026-11-01", None, NOW)
    assert ts.text == "20261101T000000Z"
    assert ts.epoch == 1793491200


def test_default_is_today_midnight() -> None:
    assert resolve_pin(None, None, NOW).text == "20261129T000000Z"


def test_exact_snapshot_and_epoch_roundtrip() -> None:
    ts = resolve_pin(None, "20250520T081234Z", NOW)
    assert Timestamp.from_epoch(ts.epoch) == ts


@pytest.mark.parametrize("bad", ["2026-11-30", "2027-01-01"])
def test_future_refused(bad: str) -> None:
    with pytest.raises(UserError, match="in the future"):
        resolve_pin(bad, None, NOW)


@pytest.mark.parametrize("bad", ["20261129", "2026-11-29T00:00:00Z", "20261332T000000Z"])
def test_bad_snapshot_text(bad: str) -> None:
    with pytest.raises(UserError, match="bad snapshot timestamp"):
        Timestamp.parse(bad)


def test_bad_date_from_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "debian:bookworm", "--date", "2026-02-30", "--once"]) == 2
    assert capsys.readouterr().err.strip() == "error: bad date '2026-02-30': no such day"


def test_sources_point_at_snapshot_with_updates_and_security() -> None:
    text = snapshot_sources("bookworm", ("main",), Timestamp.parse("20261129T000000Z"))
    assert "URIs: http://snapshot.debian.org/archive/debian/20261129T000000Z\n" in text
    assert "Suites: bookworm bookworm-updates\n" in text
    assert "URIs: http://snapshot.debian.org/archive/debian-security/20261129T000000Z\n" in text
    assert "Suites: bookworm-security\n" in text
    assert text.count("Check-Valid-Until: no") == 2
