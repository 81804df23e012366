"""reprobase key: make and inspect signing keys for attestations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from factory.attest.keys import KeyType, keyid_of, load_public, write_keypair
from factory.common.errors import UserError

HELP = "make a signing key (ed25519 or ECDSA P-256, PEM) or show a key's id"
EPILOG = """\
  reprobase key generate --output keys/rebuilder1          # keys/rebuilder1.key + .pub
  reprobase key generate --type ecdsa-p256 --output k/ci
  reprobase key id keys/rebuilder1.pub

The private key (STEM.key, PKCS#8 PEM, mode 0600, never overwritten) stays where it is
written: reprobase never prints it, logs it or puts it in an image. Share STEM.pub:
verifiers put it in their --trust directory (its file name, without .pub, names the
key in verify's output). The key id is the SHA-256 of the public key's DER form.
For a hardware token, keep the private key on the token and sign with
--sign-command (see `reprobase reproduce --help`).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    sub = p.add_subparsers(dest="key_command", metavar="ACTION", parser_class=type(p))
    g = sub.add_parser("generate", help="write a new key pair STEM.key and STEM.pub")
    g.add_argument("--type", choices=[t.value for t in KeyType], default=KeyType.ED25519.value)
    g.add_argument("--output", required=True, metavar="STEM", help="path without extension")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    i = sub.add_parser("id", help="print the key id of a public (or private) PEM key")
    i.add_argument("file", type=Path, metavar="FILE")
    i.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.key_command == "generate":
        stem = Path(args.output)
        if stem.suffix in (".key", ".pub", ".pem"):
            stem = stem.with_suffix("")
        if not stem.parent.is_dir():
            raise UserError(f"--output {args.output}: directory {stem.parent} does not exist")
        key_type = KeyType(args.type)
        private = key_type.generate()
        key_path, pub_path = write_keypair(private, stem)
        out: dict[str, object] = {
            "ok": True,
            "type": key_type.value,
            "keyid": keyid_of(private.public_key()),
            "private_key": str(key_path),
            "public_key": str(pub_path),
        }
    elif args.key_command == "id":
        pub = load_public(args.file)
        out = {"ok": True, "type": pub.key_type.value, "keyid": pub.keyid, "name": pub.name}
    else:
        raise UserError("reprobase key needs an action", hint="generate or id")
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for k, v in out.items():
            if k != "ok":
                print(f"{k}: {v}")
    return 0
