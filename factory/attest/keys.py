"""Signing keys: ed25519 or ECDSA P-256, in standard PEM files (PKCS#8, SubjectPublicKeyInfo).

The key id is the SHA-256 of the public key's DER SubjectPublicKeyInfo, in hex: anyone
with the .pub file computes the same id. A private key is read from its file only to
sign, is never printed, logged or passed to a subprocess, and is written mode 0600.
A hardware token signs through `--sign-command` instead (factory.attest.signer).
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from factory.common.errors import UserError

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class KeyType(enum.Enum):
    ED25519 = "ed25519"
    ECDSA_P256 = "ecdsa-p256"

    @property
    def sslib_scheme(self) -> str:
        """The same key's scheme name in securesystemslib (for independent checks)."""
        return "ed25519" if self is KeyType.ED25519 else "ecdsa-sha2-nistp256"

    def generate(self) -> PrivateKey:
        if self is KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
        return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class TrustedKey:
    name: str  # the .pub file's stem
    keyid: str
    key_type: KeyType
    public: PublicKey

    def verify(self, sig: bytes, message: bytes) -> bool:
        try:
            if isinstance(self.public, ed25519.Ed25519PublicKey):
                self.public.verify(sig, message)
            else:
                self.public.verify(sig, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def _spki(public: PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def keyid_of(public: PublicKey) -> str:
    return hashlib.sha256(_spki(public)).hexdigest()


def public_pem(public: PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _type_of(key: PublicKey) -> KeyType:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return KeyType.ECDSA_P256
    raise UserError("unsupported key type", hint="use an ed25519 or ECDSA P-256 key")


def load_public(path: Path, name: str | None = None) -> TrustedKey:
    """A public key from a PEM file (a private key's file gives its public half)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read key {path}: {exc.strerror or exc}") from None
    try:
        if b"PRIVATE KEY" in data:
            public = load_private(path)[0].public_key()
        else:
            public = serialization.load_pem_public_key(data)  # type: ignore[assignment]
    except ValueError:
        raise UserError(f"{path}: not a PEM public key", hint="give the .pub file") from None
    if not isinstance(public, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise UserError(f"{path}: unsupported key type", hint="ed25519 or ECDSA P-256")
    return TrustedKey(name or path.stem, keyid_of(public), _type_of(public), public)


def load_private(path: Path) -> tuple[PrivateKey, KeyType]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read key {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # the message of cryptography never contains key material; keep ours shorter still
        why = (
            "encrypted keys are not supported"
            if "encrypted" in str(exc).lower()
            else "not a PEM private key"
        )
        raise UserError(f"{path}: {why}", hint="make one with `reprobase key generate`") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise UserError(f"{path}: unsupported key type", hint="ed25519 or ECDSA P-256")
    return key, _type_of(key.public_key())


def signer_of(key: PrivateKey) -> Callable[[bytes], bytes]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign
    return lambda message: key.sign(message, ec.ECDSA(hashes.SHA256()))


def write_keypair(private: PrivateKey, stem: Path) -> tuple[Path, Path]:
    """STEM.key (PKCS#8 PEM, 0600, created exclusively) and STEM.pub; refuses to overwrite."""
    key_path, pub_path = stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".pub")
    for p in (key_path, pub_path):
        if p.exists() or p.is_symlink():
            raise UserError(f"{p} exists", hint="choose another name; keys are never overwritten")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub_path.write_bytes(public_pem(private.public_key()))
    return key_path, pub_path


def load_trust_dir(directory: Path) -> list[TrustedKey]:
    """Every *.pub (PEM) in directory, named by file stem; sorted by name."""
    if not directory.is_dir():
        raise UserError(f"--trust {directory}: not a directory", hint="a directory of .pub files")
    keys = [load_public(p) for p in sorted(directory.glob("*.pub"))]
    if not keys:
        raise UserError(
            f"--trust {directory}: no .pub files in it", hint="copy rebuilders' public keys there"
        )
    seen: dict[str, str] = {}
    for k in keys:
        if k.keyid in seen:
            raise UserError(f"--trust {directory}: {k.name} and {seen[k.keyid]} are the same key")
        seen[k.keyid] = k.name
    return keys
