#!/usr/bin/env bash
# Builds the Debian package of the three programs and checks what it holds.
# Needs cargo-deb (cargo install cargo-deb --locked). Prints the path of the .deb.
# With --install-check (root, on a disposable machine): installs the package, checks the
# user, permissions and units, and purges it again.
set -euo pipefail
install_check=0
[ "${1:-}" = "--install-check" ] && install_check=1
cd "$(dirname "$0")/.."

cargo build --release --workspace --locked --bins
rm -rf target/assets
cargo run --quiet --locked -p xtask -- assets target/assets >/dev/null
# The client ships statically linked: it starts faster (see scripts/static-client.sh).
client=$(bash scripts/static-client.sh)
mkdir -p target/assets/bin
cp "$client" target/assets/bin/ruroco-client
deb=$(cargo deb -p ruroco-server --no-build --locked 2>/dev/null | tail -n 1)
[ -f "$deb" ] || { echo "cargo deb did not produce a package" >&2; exit 1; }

contents=$(dpkg-deb -c "$deb")
missing=0
for want in \
    ./usr/bin/ruroco-server ./usr/bin/ruroco-commander ./usr/bin/ruroco-client \
    ./lib/systemd/system/ruroco.socket ./lib/systemd/system/ruroco.service \
    ./lib/systemd/system/ruroco-commander.service \
    ./etc/ruroco/config.toml ./etc/ruroco/commands.toml \
    ./etc/fail2ban/filter.d/ruroco.conf \
    ./usr/share/man/man1/ruroco-server.1.gz ./usr/share/man/man1/ruroco-commander.1.gz \
    ./usr/share/man/man1/ruroco-client.1.gz ./usr/share/man/man1/ruroco-client-send.1.gz \
    ./usr/share/bash-completion/completions/ruroco-client.bash \
    ./usr/share/zsh/vendor-completions/_ruroco-client \
    ./usr/share/fish/vendor_completions.d/ruroco-client.fish \
    ./usr/share/doc/ruroco/operators.md; do
    if ! grep -q " $want\$" <<<"$contents"; then
        echo "missing in $deb: $want" >&2
        missing=1
    fi
done
info=$(dpkg-deb -I "$deb")
grep -q "Package: ruroco$" <<<"$info" || { echo "wrong package name" >&2; missing=1; }
grep -q "conffiles" <<<"$info" || { echo "no conffiles" >&2; missing=1; }
[ "$(dpkg-deb -f "$deb" Depends | grep -c adduser)" = 1 ] || { echo "adduser not a dependency" >&2; missing=1; }
[ "$missing" = 0 ] || exit 1

if [ "$install_check" = 1 ]; then
    dpkg -i "$deb" >&2
    getent passwd ruroco >/dev/null || { echo "postinst did not create the ruroco user" >&2; exit 1; }
    [ "$(stat -c '%a %U %G' /etc/ruroco)" = "750 root ruroco" ] || { echo "bad /etc/ruroco permissions" >&2; exit 1; }
    [ "$(stat -c '%a %U' /etc/ruroco/commands.toml)" = "600 root" ] || { echo "bad commands.toml permissions" >&2; exit 1; }
    if command -v systemd-analyze >/dev/null; then
        out=$(systemd-analyze verify /lib/systemd/system/ruroco.socket /lib/systemd/system/ruroco.service \
            /lib/systemd/system/ruroco-commander.service 2>&1)
        [ -z "$out" ] || { echo "systemd-analyze verify: $out" >&2; exit 1; }
    fi
    /usr/bin/ruroco-client --version >&2
    # The static client still resolves names (glibc's files/dns backends are built in).
    if ldd /usr/bin/ruroco-client 2>&1 | grep -q "statically linked\|not a dynamic"; then
        scratch=$(mktemp -d)
        /usr/bin/ruroco-client gen >"$scratch/k.key"
        RUROCO_CONF_DIR="$scratch" /usr/bin/ruroco-client send -a localhost:9 -k "$scratch/k.key" >&2 \
            || { echo "the static client cannot send to localhost" >&2; exit 1; }
        rm -rf "$scratch"
    fi
    dpkg --purge ruroco >&2
    ! getent passwd ruroco >/dev/null || { echo "purge left the ruroco user" >&2; exit 1; }
    [ ! -e /etc/ruroco ] || { echo "purge left /etc/ruroco" >&2; exit 1; }
fi
echo "$deb"
