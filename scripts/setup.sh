#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, npm deps, the libtorch addon, the TS build.
# Everything it prints goes to stderr so that commands which end in a JSON line keep stdout clean.
set -euo pipefail
exec 1>&2
cd "$(dirname "$0")/.."

APT_PKGS=(libtorch-dev libopenblas0-openmp libgloo-dev dataset-fashion-mnist python3-torch python3-torchvision python3-skimage chromium)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# libtorch only Recommends a fast BLAS; without OpenBLAS it silently runs ~30x slower. It must be the
# OpenMP build: python3-torchvision/python3-skimage pull in libopenblas0-pthread, whose higher priority
# takes over libblas.so.3 in auto mode, and its threads then spin beside libtorch's OpenMP pool (the small
# benchmark step went from 0.42 s to 1.15 s on both engines).
for lib in libblas.so.3 liblapack.so.3; do
  want=/usr/lib/x86_64-linux-gnu/openblas-openmp/$lib
  have=$(readlink -f /usr/lib/x86_64-linux-gnu/$lib || true)
  if [ "$have" != "$want" ]; then
    echo "[setup] pointing $lib at OpenBLAS's OpenMP build (was: ${have:-none})"
    update-alternatives --set "$lib-x86_64-linux-gnu" "$want"
    have=$(readlink -f /usr/lib/x86_64-linux-gnu/$lib)
    [ "$have" = "$want" ] || { echo "[setup] ERROR: $lib resolves to $have, not $want"; exit 1; }
  fi
done

# npm dependencies: reinstall when the lock file changed since the last install.
if [ ! -f node_modules/.locus-installed ] || [ package-lock.json -nt node_modules/.locus-installed ]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund
  touch node_modules/.locus-installed
fi

# The native addon: rebuild when any source under addon/ is newer than the binary.
bin=addon/build/Release/locus.node
if [ ! -f "$bin" ] || [ -n "$(find addon -maxdepth 1 -newer "$bin" -type f)" ]; then
  echo "[setup] building the libtorch addon (about a minute)"
  npx --no-install node-gyp rebuild --directory addon -j 2 >/dev/null
fi

npx --no-install tsc -p tsconfig.json
