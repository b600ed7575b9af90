#!/usr/bin/env bash
# Installs what attnforge needs to build and test on Debian/Ubuntu (skips what is already there).
# The CUDA toolkit (nvcc, cuBLAS) must already be installed; everything else comes from apt or pip.
set -euo pipefail
need_apt=()
[ -f /usr/include/boost/hana.hpp ] || need_apt+=(libboost-dev)
[ -f /usr/include/nlohmann/json.hpp ] || need_apt+=(nlohmann-json3-dev)
[ -d /usr/include/gtest ] || need_apt+=(libgtest-dev)
[ -d /usr/include/benchmark ] || need_apt+=(libbenchmark-dev)
command -v cmake >/dev/null || need_apt+=(cmake)
command -v ninja >/dev/null || need_apt+=(ninja-build)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 - <<'PY' || python3 -m pip install -q jinja2 pytest numpy
import jinja2, pytest, numpy  # noqa: F401
PY
command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "setup: nvcc not found (install the CUDA toolkit)"; exit 1; }
