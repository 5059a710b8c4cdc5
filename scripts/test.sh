#!/usr/bin/env bash
# Set up, build, and run every test (lit + ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
PEFT_WERROR=${PEFT_WERROR:-ON} scripts/setup.sh
cd build
ctest --output-on-failure -j2
