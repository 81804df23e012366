"""Who signs: a local private key, or a command (a hardware token, a KMS client).

`--sign-command CMD` is run (argv split like a shell would, never through a shell) with
the DSSE PAE bytes on stdin, or, where CMD says `{in}`, in a private temporary file
named there; it prints the raw signature on stdout (ed25519: 64 bytes; ECDSA: DER).
`--key` then names the public key, and every signature the command returns is checked
against it before it is used: a token that signs with another key, or returns garbage,
is one clear error, never a bad attestation. With openssl 3:
`--sign-command "openssl pkeyutl -sign -inkey KEY.pem -rawin -in {in}"` (ed25519; openssl
needs a file, not a pipe, for a one-shot signature), `"openssl dgst -sha256 -sign KEY.pem
{in}"` (ECDSA P-256, DER), or a PKCS#11 token through `pkcs11-tool --sign ... --input-file {in}`.
"""

from __future__ import annotations

import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory.attest.keys import TrustedKey, keyid_of, load_private, load_public, signer_of
from factory.common import runner
from factory.common.errors import ToolFailed, UserError

IN_PLACEHOLDER = "{in}"


@dataclass(frozen=True)
class Signer:
    keyid: str
    sign: Callable[[bytes], bytes]
    describe: str  # for messages: never the key material


def _command_signer(argv: list[str], public: TrustedKey) -> Callable[[bytes], bytes]:
    def sign(message: bytes) -> bytes:
        with tempfile.TemporaryDirectory(prefix="reprobase-sign-") as tmp:
            path = Path(tmp) / "pae"
            path.write_bytes(message)
            cmd = [a.replace(IN_PLACEHOLDER, str(path)) for a in argv]
            stdin = None if any(IN_PLACEHOLDER in a for a in argv) else message
            try:
                sig = runner.run(
                    cmd, capture=True, input_bytes=stdin, env=runner.clean_env()
                ).stdout
            except ToolFailed as exc:
                raise UserError(f"--sign-command failed: {exc.message}") from None
        if not public.verify(sig, message):
            raise UserError(
                "--sign-command returned a signature that does not verify with "
                f"{public.name} ({public.keyid[:16]})",
                hint="it must print the raw signature of stdin, made with that key",
            )
        return sig

    return sign


def make_signer(key: Path, sign_command: str | None = None) -> Signer:
    if sign_command:
        argv = shlex.split(sign_command)
        if not argv:
            raise UserError("--sign-command is empty")
        public = load_public(key)
        return Signer(public.keyid, _command_signer(argv, public), f"{argv[0]} ({public.name})")
    private, _ktype = load_private(key)
    return Signer(keyid_of(private.public_key()), signer_of(private), key.name)
