"""SBOMs from synthetic dpkg facts: content, determinism, and independent validators."""

from __future__ import annotations

import json
import random
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from factory.attest import licenses, sbom_cyclonedx, sbom_spdx
from factory.attest.dpkgstatus import parse_status
from factory.attest.sbom import sbom_from_facts
from factory.rootfs.debhashes import collect, deb_hashes, license_lines
from tests.attest_fixtures import STATUS, SUBJECT, deb_sha, make_root, sample_sbom


def test_hook_facts_from_a_root(tmp_path: Path) -> None:
    facts = collect(make_root(tmp_path))
    assert sorted(facts["debs"]) == [
        "base-files 12.4+deb12u5 amd64",
        "libc6 2.36-9+deb12u4 amd64",  # from the .gz security list, not the older main one
        "libgcc-s1 12.2.0-14 amd64",
    ]
    libc = facts["debs"]["libc6 2.36-9+deb12u4 amd64"]
    assert libc["archive"] == "debian-security"
    assert libc["sha256"] == deb_sha("libc62.36-9+deb12u4")
    assert [(r["archive"], r["path"]) for r in facts["releases"]] == [
        ("debian", "dists/bookworm/InRelease"),
        ("debian-security", "dists/bookworm-security/InRelease"),
    ]
    assert "proxy.invalid" not in json.dumps(facts)  # the build-time host is not recorded
    assert facts["copyright"]["libgcc-s1"] == "->gcc-12-base"
    assert facts["copyright"]["base-files"] == ""  # free-form: no machine-readable lines


def test_license_lines_keep_only_what_is_parsed() -> None:
    text = "Format: x\n\nFiles: *\nCopyright: me\nLicense: MIT\n Permission is ...\n"
    assert license_lines(text) == "Format: x\nLicense: MIT\n"


def test_deb_hashes_ignores_other_versions() -> None:
    text = b"Package: a\nVersion: 1\nArchitecture: all\nSHA256: aa\nSize: 3\nFilename: f\n"
    assert deb_hashes(text, {("a", "2", "all")}) == {}
    assert deb_hashes(text, {("a", "1", "all")})["a 1 all"]["sha256"] == "aa"


def test_status_parsing() -> None:
    pkgs = parse_status(STATUS)
    assert [p.name for p in pkgs] == ["base-files", "libc6", "libgcc-s1"]  # not deinstalled
    libc = pkgs[1]
    assert (libc.source, libc.source_version) == ("glibc", "2.36-9+deb12u4")
    assert (pkgs[2].source, pkgs[2].source_version) == ("gcc-12", "12.2.0-14")
    assert (pkgs[0].source, pkgs[0].source_version) == ("base-files", "12.4+deb12u5")


def test_licenses_to_spdx() -> None:
    assert licenses.declared("no format\nLicense: MIT\n") is None
    names = licenses.declared("Format: x\nLicense: GPL-2+ or Artistic\nLicense: LGPL-2.1+\n")
    assert names == ("GPL-2+ or Artistic", "LGPL-2.1+")
    assert licenses.spdx_expression(names) == (
        "(GPL-2.0-or-later OR LicenseRef-Debian-Artistic) AND LGPL-2.1-or-later"
    )
    assert licenses.spdx_term("GPL-2+ with OpenSSL exception") == (
        "LicenseRef-Debian-GPL-2-with-OpenSSL-exception"
    )


def test_sbom_content(tmp_path: Path) -> None:
    sbom = sample_sbom(tmp_path)
    assert sbom.counts() == {
        "packages": 3, "with_sha256": 3, "with_license": 2, "without_copyright_file": 0,
    }  # fmt: skip
    by_name = {p.pkg.name: p for p in sbom.packages}
    libc = by_name["libc6"]
    assert libc.purl(libc.repository_url(SUBJECT)) == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&repository_url="
        "http%3A%2F%2Fsnapshot.invalid%2Farchive%2Fdebian-security%2F20261201T000000Z%2F"
    )
    assert by_name["libgcc-s1"].license_expression() == "GPL-3.0-or-later"  # via the symlink
    assert by_name["base-files"].license_expression() is None


def test_spdx_valid_by_spdx_tools(tmp_path: Path) -> None:
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(sbom_spdx.render(sample_sbom(tmp_path / "root")))
    doc = parse_file(str(path))
    assert validate_full_spdx_document(doc) == []
    assert len(doc.packages) == 4  # the image and its 3 packages
    libc = next(p for p in doc.packages if p.name == "libc6")
    assert libc.checksums[0].value == deb_sha("libc62.36-9+deb12u4")
    assert str(libc.license_declared).startswith("(GPL-2.0-or-later OR LicenseRef-Debian-Artistic)")
    assert doc.creation_info.created.isoformat() == "2026-12-01T00:00:00"


def test_cyclonedx_valid_by_cyclonedx_lib(tmp_path: Path) -> None:
    data = sbom_cyclonedx.render(sample_sbom(tmp_path))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    doc = json.loads(data)
    assert doc["metadata"]["timestamp"] == "2026-12-01T00:00:00Z"
    assert [c["name"] for c in doc["components"]] == ["base-files", "libc6", "libgcc-s1"]
    assert doc["components"][1]["hashes"] == [
        {"alg": "SHA-256", "content": deb_sha("libc62.36-9+deb12u4")}
    ]


def test_same_bytes_whatever_the_order(tmp_path: Path) -> None:
    """Paragraph order in dpkg status and list order must not reach the bytes."""
    facts = collect(make_root(tmp_path))
    first = (sbom_spdx.render(sbom_from_facts(facts, SUBJECT)),
             sbom_cyclonedx.render(sbom_from_facts(facts, SUBJECT)))  # fmt: skip
    paras = facts["status"].split("\n\n")
    random.Random(7).shuffle(paras)
    shuffled = dict(reversed(list(facts.items())))
    shuffled["status"] = "\n\n".join(paras)
    shuffled["debs"] = dict(reversed(list(facts["debs"].items())))
    again = (sbom_spdx.render(sbom_from_facts(shuffled, SUBJECT)),
             sbom_cyclonedx.render(sbom_from_facts(shuffled, SUBJECT)))  # fmt: skip
    assert first == again
    # and the document ids follow the content
    other = dict(facts, status=facts["status"].replace("12.2.0-14", "12.2.0-15"))
    assert sbom_from_facts(other, SUBJECT).content_id("spdx") != sbom_from_facts(
        facts, SUBJECT
    ).content_id("spdx")


def test_no_facts_gives_an_empty_but_valid_sbom(tmp_path: Path) -> None:
    sbom = sbom_from_facts({}, SUBJECT)
    path = tmp_path / "empty.spdx.json"
    path.write_bytes(sbom_spdx.render(sbom))
    assert validate_full_spdx_document(parse_file(str(path))) == []
