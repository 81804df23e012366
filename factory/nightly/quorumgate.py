"""Quorum-gated publication: the moving tag waits for N trusted rebuilders.

A brand-new digest cannot have been rebuilt by anyone yet, so the gate cannot stand
before the first push. With `[nightly] quorum = {trust = DIR, require = N}`:

1. A new verified image is published under its date tags only (`bookworm-20261201`,
   `bookworm-20261201T000000Z`): the candidate. Those names are immutable and say which
   snapshot they are, so rebuilders can run `reprobase reproduce REF --attest --push`
   against them. The moving tag (`bookworm`) still names the last promoted image.
2. Every night, after the builds and the re-verification (whose own attestation counts if
   the nightly's key is in DIR), the newest candidate's attestations are read from the
   first publish target and decided as `reprobase verify --require N` would. At N the
   moving tag is written, on every target, to the candidate; below N it is held and the
   history's `gates` row names the keys that are missing or disagree.
3. A no-change night re-tags the date tags onto the newest published image found by its
   exact-snapshot tag (the moving tag may still name an older one).

docs/attest-nightly.md says the same for users.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from factory.attest.fetch import attached
from factory.attest.quorum import decide
from factory.attest.seen import envelopes
from factory.common.errors import UserError
from factory.nightly.trustconfig import QuorumSpec
from factory.publish import targets as publishing
from factory.publish.targets import PublishTarget, date_tags
from factory.recipes.recipe import Recipe
from factory.report.history import History, ResultRecord
from factory.report.trustlog import GateRecord
from factory.source.snapshot import Timestamp

Say = Callable[[str], None]


def exact_tag(recipe: Recipe, snapshot: str) -> str:
    """The tag every publication writes and nothing moves: `bookworm-20261201T000000Z`."""
    return f"{recipe.tag}-{snapshot}"


def publish_candidate(
    layout: Path,
    recipe: Recipe,
    pin: Timestamp,
    targets: Sequence[PublishTarget],
    report: dict[str, Any] | None,
    say: Say,
) -> list[str]:
    """publishing.publish without the moving tag; the references written."""
    written = publishing.publish(
        layout, recipe, pin, targets, report, say, tags=date_tags(recipe, pin)
    )
    for t in targets:
        say(f"candidate {t.describe(recipe.name, exact_tag(recipe, pin.text))}: "
            f"{recipe.tag!r} waits for a quorum")  # fmt: skip
    return written


def last_published(history: History, recipe: Recipe) -> ResultRecord | None:
    """The newest nightly row that published this recipe (a candidate or promoted)."""
    recs = history.records(image=recipe.ref)
    return next(
        (r for r in recs if r.kind == "nightly" and r.publishable and r.published
         and r.index_digest), None,
    )  # fmt: skip


def retag_unchanged(
    history: History,
    recipe: Recipe,
    pin: Timestamp,
    targets: Sequence[PublishTarget],
    say: Say,
) -> tuple[str, list[str]]:
    """A no-change night under the gate: tonight's date tags onto the last published image
    (a candidate or promoted), found by its exact tag. (digest, references written)."""
    last = last_published(history, recipe)
    if last is None:
        raise UserError(f"{recipe.ref}: no published image to re-tag")
    tags = date_tags(recipe, pin)
    digest, written = "", []
    for t in targets:
        digest = publishing.point(t, recipe.name, exact_tag(recipe, last.snapshot), tags)
        written += [t.describe(recipe.name, tag) for tag in tags]
        say(f"unchanged: {t.describe(recipe.name, tags[0])} -> {digest}")
    return digest, written


def candidate(
    history: History, recipe: Recipe, targets: Sequence[PublishTarget]
) -> ResultRecord | None:
    """The newest published image of this recipe, unless the moving tag names it already
    (written by a publication before the gate, or by an earlier promotion)."""
    newest = last_published(history, recipe)
    if newest is None:
        return None
    recs = [r for r in history.records(image=recipe.ref) if r.kind == "nightly"]
    moving = {t.describe(recipe.name, recipe.tag) for t in targets}
    for r in recs:
        if r.index_digest == newest.index_digest and moving & set(r.published):
            return None
    done = {p for g in history.gates(image=recipe.ref)
            if g.index_digest == newest.index_digest and g.passed for p in g.promoted}  # fmt: skip
    return None if moving <= done else newest


def _promote(
    targets: Sequence[PublishTarget], recipe: Recipe, src_tag: str, promoted: list[str]
) -> str:
    """Write the moving tag on every target (appending each to promoted); what happened.
    A target that fails is tried again next night (candidate() sees it unpromoted)."""
    for t in targets:
        ref = t.describe(recipe.name, recipe.tag)
        try:
            publishing.point(t, recipe.name, src_tag, [recipe.tag])
        except UserError as exc:
            return f"{recipe.tag!r} not written to {ref}: {exc.message}"
        promoted.append(ref)
    return f"{recipe.tag!r} now names it"


def gate_image(
    history: History,
    recipe: Recipe,
    targets: Sequence[PublishTarget],
    spec: QuorumSpec,
    run_id: str,
    now: str,
    say: Say,
) -> GateRecord | None:
    """Decide the newest candidate; move the moving tag at quorum. None: nothing waits."""
    cand = candidate(history, recipe, targets)
    if cand is None or cand.index_digest is None or not targets:
        return None
    digest, src_tag = cand.index_digest, exact_tag(recipe, cand.snapshot)
    promoted: list[str] = []
    try:
        found = attached(targets[0].describe(recipe.name, src_tag))
        if found.subject.digest != digest:
            raise UserError(f"{src_tag} names {found.subject.digest}, not the candidate {digest}")
        d = decide(digest, list(spec.keys), envelopes(found.artifacts), spec.require)
    except UserError as exc:  # one image's registry trouble never stops the night
        message = f"quorum not decided: {exc.message}; {recipe.tag!r} held"
        identical, disagreeing, missing = [], [], sorted(k.name for k in spec.keys)
        passed = False
    else:
        message, passed = d.summary(), d.passed
        identical, disagreeing, missing = d.identical, d.disagreeing, d.missing
        if passed:
            message += "; " + _promote(targets, recipe, src_tag, promoted)
        else:
            message += f"; {recipe.tag!r} held"
    say(f"{recipe.ref} {src_tag}: {message}")
    gate = GateRecord(
        run_id, recipe.ref, digest, cand.snapshot, spec.require, passed, tuple(identical),
        tuple(disagreeing), tuple(missing), tuple(promoted), message, now,
    )  # fmt: skip
    history.add_gate(gate)
    return gate
