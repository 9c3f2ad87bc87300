#!/usr/bin/env bash
# Builds the three programs (or the packages named) for release, dynamically linked against
# the system's C library, and prints the directory that holds them. The Debian package,
# the RPM, the release tarball and the benchmark ship or measure this build.
#
# Why not static: glibc answers user and group lookups (socket_user, the server's user in
# --check, ~ in paths) and, with `hosts:` entries other than files and dns, name lookups
# through the NSS modules that /etc/nsswitch.conf names. A statically linked glibc program
# still loads those modules at run time, and a module built for the shared glibc — Debian
# 12's `passwd: files systemd` loads libnss_systemd — crashes it (SIGSEGV in --check,
# measured). A dynamic build loads them as the distribution intends. musl avoids the
# crash but never consults NSS at all, so a user known only to systemd or LDAP would not
# exist for it; the distributions' own packages are dynamically linked, and so are ours.
# The tarball's programs need glibc 2.34 or later (packaging/dist-check.sh prints the
# newest symbol version they use).
#
# The client is built with its own profile (`client` in Cargo.toml: whole-program LTO, no
# unwinding), since it starts once per knock; the daemons with `release`. The directory
# printed, target/ship, holds the programs asked for, side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(ruroco-server ruroco-commander ruroco-client)
daemons=()
client=no
for p in "${packages[@]}"; do
    if [ "$p" = ruroco-client ]; then client=yes; else daemons+=(-p "$p"); fi
done
[ ${#daemons[@]} -eq 0 ] || cargo build --release --locked --quiet "${daemons[@]}"
[ $client = no ] || cargo build --profile client --locked --quiet -p ruroco-client
rm -rf target/ship
mkdir -p target/ship
for p in "${packages[@]}"; do
    if [ "$p" = ruroco-client ]; then from=target/client; else from=target/release; fi
    cp "$from/$p" target/ship/
done
echo "target/ship"
