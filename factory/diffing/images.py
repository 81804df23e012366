"""Top-down comparison: index → manifests (matched by platform) → config → layers.

A child is only descended into when its digest differs, and a digest difference is
never reported by itself: the report names the fields, files and bytes that make it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from factory.diffing.collect import Collector
from factory.diffing.jsoncmp import compare_json
from factory.diffing.layers import LayerSide, compare_layer
from factory.diffing.model import Category, Difference, DiffKind, Level
from factory.diffing.stores import BlobSource
from factory.image import oci

INDEXES = (oci.MT_INDEX, oci.DOCKER_LIST)
MANIFESTS = (oci.MT_MANIFEST, oci.DOCKER_MANIFEST)
CREATED = "org.opencontainers.image.created"


def classify(field: str) -> Category:
    if field.startswith("history"):
        return Category.HISTORY
    if field.endswith(".created") or field == "created" or CREATED in field:
        return Category.TIMESTAMP
    return Category.BEHAVIOUR


def json_note(field: str) -> str | None:
    cat = classify(field)
    if cat is Category.TIMESTAMP:
        return "creation time differs: set it to SOURCE_DATE_EPOCH"
    if cat is Category.HISTORY:
        return "history differs: it records build commands and times, not behaviour"
    if field.endswith(("Hostname", "Domainname")):
        return "the build host's name leaked into the config"
    return None


def add_json(out: Collector, level: Level, where: str, a: Any, b: Any, prefix: str = "",
             skip: tuple[str, ...] = ()) -> None:  # fmt: skip
    for field, kind, va, vb in compare_json(a, b, skip):
        full = f"{prefix}{field}" if not prefix or not field else f"{prefix}.{field}"
        out.add(Difference(level, where, full, "", kind, va, vb, classify(full), json_note(full)))


def platform_key(desc: dict[str, Any], i: int) -> str:
    p = desc.get("platform") or {}
    if p.get("os") and p.get("architecture"):
        return "/".join(str(x) for x in (p["os"], p["architecture"], p.get("variant")) if x)
    ref = (desc.get("annotations") or {}).get(oci.ANN_REF_NAME)
    return f"ref {ref}" if ref else f"manifests[{i}]"


def match(la: list[dict[str, Any]], lb: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    """(key, desc in A or None, desc in B or None), matched by platform (or ref name)."""
    ka = {platform_key(d, i): d for i, d in enumerate(la)}
    kb = {platform_key(d, i): d for i, d in enumerate(lb)}
    if len(ka) == len(kb) == 1 and ka.keys() != kb.keys():
        return [(next(iter(ka)), la[0], lb[0])]
    keys = list(ka) + [k for k in kb if k not in ka]
    return [(k, ka.get(k), kb.get(k)) for k in keys]


class ImageComparison:
    def __init__(self, a: BlobSource, b: BlobSource, out: Collector, sde: int | None) -> None:
        self.a, self.b, self.out, self.sde = a, b, out, sde

    def run(self) -> None:
        self.index("index.json", self.a.index(), self.b.index())

    def index(self, where: str, ia: dict[str, Any], ib: dict[str, Any]) -> None:
        add_json(self.out, Level.INDEX, where, ia, ib, skip=("manifests",))
        for key, da, db in match(ia.get("manifests") or [], ib.get("manifests") or []):
            if da is None or db is None:
                d = da if da is not None else db
                kind = DiffKind.REMOVED if db is None else DiffKind.ADDED
                self.out.add(
                    Difference(
                        Level.INDEX,
                        where,
                        f"manifests[{key}]",
                        "",
                        kind,
                        da["digest"] if da else None,
                        db["digest"] if db else None,
                    )
                )
                assert d is not None
                continue
            add_json(self.out, Level.INDEX, where, da, db, f"manifests[{key}]", ("digest", "size"))
            if da["digest"] == db["digest"]:
                continue
            ma, mb = self.a.read_json(da["digest"]), self.b.read_json(db["digest"])
            types = {da["mediaType"], db["mediaType"]}
            if types <= set(INDEXES):
                self.index(key, ma, mb)
            elif types <= set(MANIFESTS):
                self.manifest(key, ma, mb)

    def manifest(self, where: str, ma: dict[str, Any], mb: dict[str, Any]) -> None:
        self.out.heading(where, "")
        add_json(self.out, Level.MANIFEST, where, ma, mb, skip=("config", "layers"))
        ca, cb = ma.get("config") or {}, mb.get("config") or {}
        add_json(self.out, Level.MANIFEST, where, ca, cb, "config", ("digest", "size"))
        cfg_a = self.a.read_json(ca["digest"]) if ca.get("digest") else {}
        sde = self.sde if self.sde is not None else sde_from_config(cfg_a)
        la, lb = ma.get("layers") or [], mb.get("layers") or []
        layers_differ = [x["digest"] for x in la] != [x["digest"] for x in lb]
        cfg_b = cfg_a
        if ca.get("digest") != cb.get("digest"):
            cfg_b = self.b.read_json(cb["digest"]) if cb.get("digest") else {}
            self.config(f"{where} config", cfg_a, cfg_b, layers_differ)
        ids = (diff_ids(cfg_a, len(la)), diff_ids(cfg_b, len(lb)))
        self.layers(where, la, lb, sde, ids)

    def config(
        self, where: str, ca: dict[str, Any], cb: dict[str, Any], layers_differ: bool
    ) -> None:
        for field, kind, va, vb in compare_json(ca, cb):
            if field == "rootfs.diff_ids" and layers_differ:
                continue  # follows from the layers, explained below
            self.out.add(
                Difference(
                    Level.CONFIG, where, field, "", kind, va, vb, classify(field), json_note(field)
                )
            )

    def layers(
        self,
        where: str,
        la: list[dict[str, Any]],
        lb: list[dict[str, Any]],
        sde: int | None,
        ids: tuple[list[str | None], list[str | None]],
    ) -> None:
        for i in range(max(len(la), len(lb))):
            da = la[i] if i < len(la) else None
            db = lb[i] if i < len(lb) else None
            lw = f"{where} layer {i}"
            if da is None or db is None:
                kind = DiffKind.REMOVED if db is None else DiffKind.ADDED
                self.out.add(
                    Difference(
                        Level.MANIFEST,
                        where,
                        f"layers[{i}]",
                        "",
                        kind,
                        da["digest"] if da else None,
                        db["digest"] if db else None,
                    )
                )
                continue
            add_json(
                self.out,
                Level.MANIFEST,
                where,
                strip_compression(da),
                strip_compression(db),
                f"layers[{i}]",
                ("digest", "size"),
            )
            if da["digest"] == db["digest"]:
                continue
            self.out.heading(lw, f"{da['digest']} vs {db['digest']}")
            side_a = LayerSide(
                f"{self.a.label} layer {i}", da["digest"], self.a.opener(da["digest"]), ids[0][i]
            )
            side_b = LayerSide(
                f"{self.b.label} layer {i}", db["digest"], self.b.opener(db["digest"]), ids[1][i]
            )
            compare_layer(side_a, side_b, lw, self.out, sde)


def strip_compression(desc: dict[str, Any]) -> dict[str, Any]:
    """The layer's media type without its compression (explained at the layer level)."""
    mt = str(desc.get("mediaType", ""))
    for suffix in ("+gzip", "+zstd", ".gzip", ".zstd"):
        mt = mt.removesuffix(suffix)
    return {**desc, "mediaType": mt}


def sde_from_config(cfg: dict[str, Any]) -> int | None:
    """SOURCE_DATE_EPOCH as recorded in the image: env, a label, or `created`."""
    inner = cfg.get("config") or {}
    for env in inner.get("Env") or []:
        if str(env).startswith("SOURCE_DATE_EPOCH=") and env.split("=", 1)[1].isdigit():
            return int(env.split("=", 1)[1])
    for key, value in (inner.get("Labels") or {}).items():
        if key.lower().replace("_", "-").endswith("source-date-epoch") and str(value).isdigit():
            return int(value)
    created = cfg.get("created")
    if isinstance(created, str):
        try:
            return int(dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None


def diff_ids(cfg: dict[str, Any], n: int) -> list[str | None]:
    """The config's rootfs.diff_ids, if it declares one well-formed id per layer."""
    ids = (cfg.get("rootfs") or {}).get("diff_ids")
    if not isinstance(ids, list) or len(ids) != n:
        return [None] * n
    return [i if isinstance(i, str) and i.startswith("sha256:") else None for i in ids]
