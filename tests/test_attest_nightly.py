"""The nightly's attest_key: read when the config is, so a bad key stops nothing midway."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.attest.keys import KeyType, write_keypair
from factory.common.errors import UserError
from factory.nightly.config import config_from_dict


def _cfg(**over: str) -> dict[str, dict[str, object]]:
    return {"nightly": {"images": ["debian:bookworm"], **over}}


def test_attest_key_is_checked_with_the_config(tmp_path: Path) -> None:
    key, pub = write_keypair(KeyType.ED25519.generate(), tmp_path / "nightly")
    cfg = config_from_dict(_cfg(attest_key=str(key)), "n.toml")
    assert cfg.attest_key == key and cfg.sign_command is None
    hook = config_from_dict(_cfg(attest_key=str(pub), sign_command="token-sign {in}"), "n.toml")
    assert hook.sign_command == "token-sign {in}"
    assert config_from_dict(_cfg(), "n.toml").attest_key is None


@pytest.mark.parametrize(
    ("over", "expect"),
    [
        ({"attest_key": "/nonexistent.key"}, "attest_key"),
        ({"sign_command": "x"}, "needs attest_key"),
    ],
)
def test_bad_attest_settings(over: dict[str, str], expect: str) -> None:
    with pytest.raises(UserError, match=expect):
        config_from_dict(_cfg(**over), "n.toml")
