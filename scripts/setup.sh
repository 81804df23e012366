#!/usr/bin/env bash
# Set up a Debian (bookworm or newer) machine for reprobase, as root:
# the Debian tools it drives, foreign-architecture emulation, and a virtualenv.
# Idempotent: safe to run before every command.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (mmdebstrap root mode, chroot and namespaces need it)" >&2
  exit 2
fi

APT_PACKAGES=(
  # building: root filesystems, emulation of foreign architectures, a shifted clock
  mmdebstrap debian-archive-keyring arch-test qemu-user-static binfmt-support faketime
  uidmap util-linux
  # checking our OCI output, and the registry the publishing tests push to
  # (runc: podman's crun refuses this machine's hybrid cgroups)
  skopeo umoci podman runc docker-registry apache2-utils openssl
  # derived images (reprobase build -f Containerfile): the steps' builder, no daemon
  buildah
  # peers measured by the benchmarks and by the tests
  # (debootstrap: debuerreotype-init needs it and it is only a Recommends)
  debuerreotype debootstrap apt-cacher-ng approx diffoscope-minimal hyperfine
  # the load balancer of the proxy farm test (tests/test_proxy_farm.py, schedules/farm/)
  nginx-light
  # schedules and the report: unit checks, the browser that looks at the dashboard
  systemd chromium fonts-dejavu-core sqlite3 docker-compose shellcheck
  python3-venv python3-dev gcc curl ca-certificates gpg apt
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  # apt-cacher-ng and approx are only benchmark peers: keep their services off.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  for svc in apt-cacher-ng approx docker-registry nginx; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# Foreign architectures (arm64 images on an amd64 host) run under qemu-user via binfmt_misc.
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
fi
if [ -e /proc/sys/fs/binfmt_misc/status ]; then
  update-binfmts --enable >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: ready (.venv/bin/reprobase, $(mmdebstrap --version), emulation: $(arch-test 2>/dev/null | tr '\n' ' '))"
