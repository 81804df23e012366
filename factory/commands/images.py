"""`reprobase images`: the recipes this reprobase knows, and where each comes from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from factory.common.errors import UserError
from factory.recipes.book import ENV, BookEntry, RecipeBook
from factory.recipes.recipe import load_recipe

HELP = "list the recipes reprobase knows (NAME:TAG, suite, variant, architectures, origin)"
EPILOG = f"""\
search path, first match wins: --recipes DIR (repeatable, in order), then
{ENV} (colon-separated directories), then the recipes shipped with reprobase.
A directory holds NAME/TAG.toml for the recipe NAME:TAG; a recipe shadowed by an
earlier directory is listed as such.

examples:
  reprobase images
  reprobase images --recipes ~/my-recipes --json
"""


def add_recipes_argument(p: argparse.ArgumentParser) -> None:
    """--recipes DIR, the same for every command that reads recipes."""
    p.add_argument(
        "--recipes",
        action="append",
        type=Path,
        metavar="DIR",
        help=f"also search DIR for NAME/TAG.toml recipes, before {ENV} and the shipped "
        "ones (repeatable)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    add_recipes_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")


def describe(entry: BookEntry) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ref": entry.ref,
        "path": str(entry.path),
        "origin": entry.origin.origin,
        "shadowed": entry.shadowed,
    }
    try:
        recipe = load_recipe(str(entry.path))
    except UserError as exc:  # one broken recipe of a user's must not hide the others
        doc["error"] = exc.message
        return doc
    doc.update(
        suite=recipe.suite,
        variant=recipe.variant,
        architectures=list(recipe.architectures),
        compression=recipe.compression,
        description=recipe.description,
    )
    return doc


def run(args: argparse.Namespace) -> int:
    book = RecipeBook.resolve(args.recipes)
    recipes = [describe(e) for e in book.entries()]
    if args.json:
        doc = {
            "ok": True,
            "search_path": [{"path": str(d.path), "origin": d.origin} for d in book.dirs],
            "recipes": recipes,
        }
        print(json.dumps(doc, sort_keys=True))
        return 0
    w = sys.stdout.write
    w(f"{'image':<24} {'suite':<10} {'variant':<9} {'architectures':<20} from\n")
    for r in recipes:
        where = f"{r['origin']} {r['path']}" + (" (shadowed)" if r["shadowed"] else "")
        if "error" in r:
            w(f"{r['ref']:<24} error: {r['error']}  [{where}]\n")
            continue
        arches = ",".join(r["architectures"])
        w(f"{r['ref']:<24} {r['suite']:<10} {r['variant']:<9} {arches:<20} {where}\n")
    if not recipes:
        w(f"(no recipes in {book.describe()})\n")
    return 0
