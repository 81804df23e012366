"""Exec a command with a given host name and umask (used inside `unshare --uts`).

`python -m factory.rootfs.varyenv --hostname H --umask 0002 -- CMD...`
"""

from __future__ import annotations

import argparse
import os
import socket
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m factory.rootfs.varyenv")
    ap.add_argument("--hostname")
    ap.add_argument("--umask", type=lambda s: int(s, 8), default=0o022)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        ap.error("no command")
    if args.hostname:
        socket.sethostname(args.hostname)
    os.umask(args.umask)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    sys.exit(main())
