#!/usr/bin/env bash
# Builds the three programs (or the packages named) as static-pie executables (glibc,
# ASLR kept) and prints the directory that holds them.
#
# Why: they then run on any Linux of the architecture, whatever its libc version (the
# release tarball), and a client run, which is over in about a millisecond, no longer
# spends a third of it in the dynamic loader mapping libc and libgcc_s and relocating them
# (page faults, measured with `perf stat -e page-faults`: 110 dynamic, 78 static). The
# Debian package, the release tarball and the benchmark ship this build; `cargo install`
# gives the ordinary dynamic one.
#
# crt-static cannot go into .cargo/config.toml: without an explicit --target it would
# apply to proc-macro crates too, which cannot be built statically. Name and user lookups
# still work: glibc's files and dns backends are built into the static library.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(ruroco-server ruroco-commander ruroco-client)
args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
    *-linux-gnu)
        RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet \
            "${args[@]}" --target "$host" --target-dir target/static
        echo "target/static/$host/release"
        ;;
    *)
        # musl targets link statically already; anything else gets the ordinary build.
        cargo build --release --locked --quiet "${args[@]}"
        echo "target/release"
        ;;
esac
