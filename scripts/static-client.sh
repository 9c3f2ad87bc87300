#!/usr/bin/env bash
# Builds ruroco-client as a static-pie executable (glibc, ASLR kept) and prints its path.
#
# Why: a client run is over in about a millisecond, and on a glibc system a third of that is
# the dynamic loader mapping libc and libgcc_s and relocating them (page faults, measured
# with `perf stat -e page-faults`: 110 dynamic, 78 static). The Debian package and the
# benchmark ship this build; `cargo install` gives the ordinary dynamic one.
#
# crt-static cannot go into .cargo/config.toml: without an explicit --target it would
# apply to proc-macro crates too, which cannot be built statically. Name resolution still
# works: glibc's files and dns backends are built into the static library.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
    *-linux-gnu)
        RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet \
            -p ruroco-client --target "$host" --target-dir target/static
        echo "target/static/$host/release/ruroco-client"
        ;;
    *)
        # musl targets link statically already; anything else gets the ordinary build.
        cargo build --release --locked --quiet -p ruroco-client
        echo "target/release/ruroco-client"
        ;;
esac
