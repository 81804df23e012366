#!/bin/sh
# Download the wheels schedules/proxy-requirements.txt pins (hashes checked) into
# schedules/proxy-wheels/, for `reprobase build -f schedules/Containerfile.proxy --context .`
# Usage: schedules/proxy-wheels.sh [DEST]      (run from anywhere; pip from PATH or $PIP)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-$here/proxy-wheels}
pip=${PIP:-pip}
mkdir -p "$dest"
# bookworm's Python (3.11, glibc 2.36): one wheel per package and architecture
for arch in x86_64 aarch64; do
    $pip download --quiet --no-deps --only-binary=:all: --require-hashes \
        --implementation cp --python-version 3.11 --abi cp311 --abi none \
        --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" \
        --platform "manylinux2014_$arch" \
        -r "$here/proxy-requirements.txt" -d "$dest"
done
