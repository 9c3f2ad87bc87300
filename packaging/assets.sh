#!/usr/bin/env bash
# Prepares target/assets for the packages: the three programs built for release
# (target/assets/bin, see scripts/release-build.sh), man pages and shell completions
# (cargo run -p xtask -- assets; also gzipped in target/assets/man-gz). RUROCO_VERSION_LABEL,
# if set, labels the version.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf target/assets
cargo run --quiet --locked -p xtask -- assets target/assets >/dev/null
bins=$(bash scripts/release-build.sh)
mkdir -p target/assets/bin
for program in ruroco-server ruroco-commander ruroco-client; do
    cp "$bins/$program" target/assets/bin/
    # No symbol table in what ships (the packages' linters ask for it; panics print no
    # backtrace in a release build anyway).
    strip --strip-all "target/assets/bin/$program"
done
# Compressed man pages, for the packages that do not compress them themselves (RPM).
mkdir -p target/assets/man-gz
for page in target/assets/man/*.[15]; do
    gzip -n -9 -c "$page" >"target/assets/man-gz/$(basename "$page").gz"
done
