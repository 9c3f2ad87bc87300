#!/usr/bin/env bash
# Builds ruroco-client as a static-pie executable and prints its path (see
# scripts/static-build.sh for why).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(bash scripts/static-build.sh ruroco-client)
echo "$dir/ruroco-client"
