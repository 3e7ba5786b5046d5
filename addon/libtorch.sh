#!/bin/sh
# Build settings for binding.gyp when LOCUS_LIBTORCH names a libtorch root: the official libtorch zip,
# or site-packages/torch of a PyTorch wheel (both have include/, include/torch/csrc/api/include, lib/).
# binding.gyp calls it only when LOCUS_LIBTORCH is set; without it the addon builds against Debian's
# libtorch-dev and this script is not used.
#
#   sh libtorch.sh root           the absolute libtorch root (checked)
#   sh libtorch.sh cuda           1 when lib/ has libtorch_cuda.so (a CUDA build), else 0
#   sh libtorch.sh gloo           1 when the Gloo headers are there (c10d ProcessGroupGloo), else 0
#   sh libtorch.sh nccl           1 for a CUDA build with ProcessGroupNCCL whose CUDA/NCCL headers are found, else 0
#   sh libtorch.sh cuda_includes  the include dirs of the CUDA toolkit and NCCL (the wheel's nvidia/*/include, CUDA_HOME)
#   sh libtorch.sh abi            _GLIBCXX_USE_CXX11_ABI=0|1 from share/cmake/Torch/TorchConfig.cmake (empty if not stated)
#
# LOCUS_NCCL=0 builds a CUDA libtorch without NCCL; CUDA_HOME (default /usr/local/cuda) is searched for headers.
set -eu

root=${LOCUS_LIBTORCH:-}
[ -n "$root" ] || { echo "libtorch.sh: LOCUS_LIBTORCH is not set" >&2; exit 1; }
case $root in
  /*) ;;
  *) root="${INIT_CWD:-$PWD}/$root" ;; # relative: to where npm/npx was started
esac
if [ ! -d "$root/include/torch/csrc/api/include" ] || [ ! -d "$root/lib" ] ||
  { [ ! -e "$root/lib/libtorch.so" ] && [ ! -e "$root/lib/libtorch_cpu.so" ]; }; then
  echo "LOCUS_LIBTORCH=$LOCUS_LIBTORCH is not a libtorch root: expected include/torch/csrc/api/include and lib/libtorch.so under it (the libtorch zip, or site-packages/torch of a PyTorch wheel)" >&2
  exit 1
fi
root=$(cd "$root" && pwd)

cuda() { [ -e "$root/lib/libtorch_cuda.so" ]; }

cuda_includes() {
  for d in "$root"/../nvidia/*/include "${CUDA_HOME:-/usr/local/cuda}/include"; do
    [ -d "$d" ] && (cd "$d" && pwd)
  done
  return 0
}

# A header found in the CUDA include dirs, libtorch's include dir or the system's.
have_header() {
  for d in $(cuda_includes) "$root/include" /usr/include /usr/local/include; do
    [ -e "$d/$1" ] && return 0
  done
  return 1
}

case ${1:-} in
  root) echo "$root" ;;
  cuda) if cuda; then echo 1; else echo 0; fi ;;
  gloo) if [ -e "$root/include/gloo/algorithm.h" ]; then echo 1; else # only this libtorch's own Gloo
    echo "libtorch.sh: no Gloo headers (include/gloo) in $root: the addon is built without Gloo" >&2
    echo 0
  fi ;;
  nccl)
    if ! cuda || [ "${LOCUS_NCCL:-1}" = 0 ] || [ ! -e "$root/include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp" ]; then
      echo 0
      exit 0
    fi
    # What ProcessGroupNCCL.hpp pulls in beyond libtorch's own headers.
    missing=
    for h in nccl.h cuda.h cuda_runtime_api.h cublas_v2.h cusparse.h cusolverDn.h; do
      have_header "$h" || missing="$missing $h"
    done
    if [ -n "$missing" ]; then
      echo "libtorch.sh: a CUDA libtorch, but these headers are not found:$missing (looked in $root/../nvidia/*/include, \${CUDA_HOME:-/usr/local/cuda}/include, /usr/include): the addon is built without NCCL" >&2
      echo 0
    else
      echo 1
    fi
    ;;
  cuda_includes) cuda_includes ;;
  abi)
    f="$root/share/cmake/Torch/TorchConfig.cmake"
    [ -e "$f" ] && grep -o '_GLIBCXX_USE_CXX11_ABI=[01]' "$f" | head -n 1
    exit 0
    ;;
  *)
    echo "usage: sh libtorch.sh root|cuda|gloo|nccl|cuda_includes|abi" >&2
    exit 2
    ;;
esac
