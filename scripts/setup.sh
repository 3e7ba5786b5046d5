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

# libtorch only Recommends a fast BLAS; without OpenBLAS it silently runs ~30x slower.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
if [[ "$blas" != *openblas* ]]; then
  echo "[setup] pointing libblas.so.3 at OpenBLAS (was: ${blas:-none})"
  update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
  blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3)
  [[ "$blas" == *openblas* ]] || { echo "[setup] ERROR: libblas.so.3 resolves to $blas, not OpenBLAS"; exit 1; }
fi

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
