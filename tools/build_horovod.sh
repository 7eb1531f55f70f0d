#!/usr/bin/env bash
# Build Horovod 0.28.1 (PyTorch + Gloo, CPU ops) once and install it into a venv.
#
# Why a source build: the 0.28.1 release compiles as C++14 and fails against torch >= 2.1
# (horovod issues #3996/#4014, fixed on master by PR #3998, never released). We patch the two
# CMakeLists to C++17 and build with Debian's cmake (PyPI's cmake 4.x refuses gloo's old
# cmake_minimum_required). The wheel is cached outside git, keyed by the torch version, so a
# second `make` neither rebuilds nor reinstalls.
#
# usage: tools/build_horovod.sh VENV_PYTHON WHEEL_CACHE_DIR
set -euo pipefail

python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute: the build runs in another folder
cache_root=$2
version=0.28.1
torch_version=$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')
cache="$cache_root/horovod-$version-torch-$torch_version"
mkdir -p "$cache"

wheel=$(ls "$cache"/horovod-"$version"-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  command -v cmake >/dev/null || { echo "cmake not found: apt-get install -y cmake" >&2; exit 1; }
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "[horovod] building $version against torch $torch_version (about 3 minutes on 2 cores)"
  "$python" -m pip download -q --no-deps --no-binary :all: "horovod==$version" -d "$work" 2>&1 \
    | sed '/is ignored: it is neither/d'
  tar -xzf "$work/horovod-$version.tar.gz" -C "$work"
  src="$work/horovod-$version"
  sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' \
    "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
  (
    cd "$src"
    export PATH="/usr/bin:$PATH"  # Debian's cmake 3.25, never a PyPI cmake 4.x from the venv
    HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=GLOO \
    MAKEFLAGS="-j$(nproc)" \
      "$python" -m pip wheel -q --no-deps --no-build-isolation . -w "$work/dist" >"$work/build.log" 2>&1 \
      || { tail -n 60 "$work/build.log" >&2; exit 1; }
  )
  cp "$work"/dist/horovod-"$version"-*.whl "$cache/"
  wheel=$(ls "$cache"/horovod-"$version"-*.whl | head -n 1)
  echo "[horovod] cached $wheel"
fi

if ! "$python" -c "import horovod, sys; sys.exit(horovod.__version__ != '$version')" 2>/dev/null; then
  "$python" -m pip install -q --no-deps "$wheel"
fi
