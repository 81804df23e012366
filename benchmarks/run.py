"""Run every benchmark, one after the other, each printing its own table of ratios
against the peers measured in the same run.

    .venv/bin/python benchmarks/run.py            # all
    .venv/bin/python benchmarks/run.py build diff # some
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = ["build", "compress", "proxy", "publish", "diff", "nightly", "derive", "attest"]


def main(argv: list[str]) -> int:
    wanted = argv or ALL
    failed = []
    for name in wanted:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(f"(no benchmark {name})")
            continue
        print(f"\n# benchmark: {name}\n", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
