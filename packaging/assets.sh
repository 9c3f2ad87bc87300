#!/usr/bin/env bash
# Prepares target/assets for the packages: the three programs built static-pie
# (target/assets/bin, see scripts/static-build.sh), man pages and shell completions
# (cargo run -p xtask -- assets). RUROCO_VERSION_LABEL, if set, labels the version.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/assets
cargo run --quiet --locked -p xtask -- assets target/assets >/dev/null
bins=$(bash scripts/static-build.sh)
mkdir -p target/assets/bin
for program in ruroco-server ruroco-commander ruroco-client; do
    cp "$bins/$program" target/assets/bin/
done
