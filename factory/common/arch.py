"""Debian architectures and what each one means for OCI and for emulation."""

from __future__ import annotations

import enum
import platform as _platform
from collections.abc import Iterable

from factory.common.errors import UserError


class Architecture(enum.Enum):
    # value: (debian name, OCI architecture, OCI variant, qemu-user binary, kernel machine names)
    AMD64 = ("amd64", "amd64", None, "qemu-x86_64-static", ("x86_64",))
    ARM64 = ("arm64", "arm64", "v8", "qemu-aarch64-static", ("aarch64", "arm64"))
    ARMHF = ("armhf", "arm", "v7", "qemu-arm-static", ("armv7l",))
    ARMEL = ("armel", "arm", "v5", "qemu-arm-static", ())
    I386 = ("i386", "386", None, "qemu-i386-static", ("i686", "i386"))
    PPC64EL = ("ppc64el", "ppc64le", None, "qemu-ppc64le-static", ("ppc64le",))
    S390X = ("s390x", "s390x", None, "qemu-s390x-static", ("s390x",))
    RISCV64 = ("riscv64", "riscv64", None, "qemu-riscv64-static", ("riscv64",))

    @property
    def debian(self) -> str:
        return str(self.value[0])

    @property
    def qemu_binary(self) -> str:
        return str(self.value[3])

    def to_oci(self) -> dict[str, str]:
        """The OCI platform object (image-index.md: arm64 is arm64/v8, armhf arm/v7)."""
        p = {"architecture": str(self.value[1]), "os": "linux"}
        if self.value[2]:
            p["variant"] = str(self.value[2])
        return p

    def oci_platform_string(self) -> str:
        p = self.to_oci()
        return "/".join(x for x in ("linux", p["architecture"], p.get("variant")) if x)

    @classmethod
    def parse(cls, name: str) -> Architecture:
        for a in cls:
            if a.debian == name:
                return a
        known = ", ".join(a.debian for a in cls)
        raise UserError(f"unknown architecture {name!r}", hint=f"use one of: {known}")

    @classmethod
    def ordered(cls, arches: Iterable[Architecture]) -> tuple[Architecture, ...]:
        """The one architecture order (the enum's), without repeats: an index's digest
        must not depend on how the architectures were listed, and per-arch builds must
        merge into the same index."""
        chosen = set(arches)
        return tuple(a for a in cls if a in chosen)

    @classmethod
    def parse_list(cls, names: Iterable[str]) -> tuple[Architecture, ...]:
        """Names (blanks ignored) to the canonical order."""
        return cls.ordered(cls.parse(n.strip()) for n in names if n.strip())

    @classmethod
    def native(cls) -> Architecture:
        machine = _platform.machine()
        for a in cls:
            if machine in a.value[4]:
                return a
        raise UserError(f"unsupported host machine {machine!r}")

    def is_native(self) -> bool:
        return self is Architecture.native() or (
            self is Architecture.I386 and Architecture.native() is Architecture.AMD64
        )


def require_emulation(arch: Architecture, purpose: str) -> None:
    """Refuse, in one line, an architecture this machine can neither run nor emulate."""
    if arch.is_native():
        return
    from factory.common import runner  # runner imports nothing of this module

    runner.require_tool("arch-test")
    if arch.debian not in runner.output(["arch-test"]).split():
        raise UserError(
            f"this machine cannot run {arch.debian} binaries ({purpose})",
            hint="apt-get install qemu-user-static binfmt-support, then check with arch-test",
        )
