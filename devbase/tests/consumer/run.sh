#!/usr/bin/env bash
# Installs the built library into a scratch prefix (cmake --install) and builds + runs a separate
# project that finds it with find_package(attnforge). Usage: run.sh BUILD_DIR
set -euo pipefail
build=$1 here=$(cd "$(dirname "$0")" && pwd)
prefix=$build/consumer-install
rm -rf "$prefix" "$build/consumer-build"
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S "$here" -B "$build/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/consumer-build" >/dev/null
"$build/consumer-build/consumer"
