"""`reprobase paths`: the directories and files reprobase uses by default, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cache_proxy.paths import CACHE_ENV, proxy_cache_dir
from factory.commands.images import add_recipes_argument
from factory.common import shipped
from factory.common.paths import Paths
from factory.recipes.book import RecipeBook

HELP = "print the default paths in use (cache, history, report, store, configs, recipes)"
EPILOG = f"""\
defaults: as root /var/cache/reprobase and /var/lib/reprobase (FHS); otherwise
$XDG_CACHE_HOME/reprobase (~/.cache) and $XDG_DATA_HOME/reprobase (~/.local/share).
{CACHE_ENV} moves the proxy's store for `reprobase proxy` and `reprobase build`
alike; a command's own flags and config file keys win over all of these.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    add_recipes_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead")


def in_use(args: argparse.Namespace) -> dict[str, Any]:
    paths = Paths.for_user()
    doc = paths.to_json()
    doc["proxy_cache"] = str(proxy_cache_dir())
    configs = [p for p in paths.nightly_configs if p.is_file()]
    doc["nightly_config"] = str(configs[0] if configs else shipped.schedule("nightly.toml"))
    schedules, origin = shipped.where(shipped.Shipped.SCHEDULES)
    doc["schedules"] = {"path": str(schedules), "origin": origin}
    book = RecipeBook.resolve(args.recipes)
    doc["recipes"] = [{"path": str(d.path), "origin": d.origin} for d in book.dirs]
    return doc


def run(args: argparse.Namespace) -> int:
    doc = in_use(args)
    if args.json:
        print(json.dumps({"ok": True, **doc}, sort_keys=True))
        return 0
    w = sys.stdout.write
    w(f"scheme          {doc['scheme']}\n")
    for key in ("cache", "data", "config", "proxy_cache", "history", "report", "store"):
        w(f"{key:<15} {doc[key]}\n")
    w(f"{'nightly_config':<15} {doc['nightly_config']}\n")
    w(f"{'schedules':<15} {doc['schedules']['path']} ({doc['schedules']['origin']})\n")
    for i, d in enumerate(doc["recipes"]):
        w(f"{'recipes' if i == 0 else '':<15} {d['path']} ({d['origin']})\n")
    return 0
