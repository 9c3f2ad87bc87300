#!/usr/bin/env bash
# Builds the RPM package of the three programs with cargo-generate-rpm (cargo install
# cargo-generate-rpm --locked) and checks it where rpm and rpmlint are installed: the
# files it must hold, its scriptlets and config files, an install into a temporary root,
# and rpmlint without errors. Prints the path of the .rpm.
#   --reuse-assets  take target/assets as packaging/assets.sh left it (after build-deb.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-generate-rpm >/dev/null; then
    echo "build-rpm.sh needs cargo-generate-rpm: cargo install cargo-generate-rpm --locked" >&2
    exit 1
fi
[ "${1:-}" = "--reuse-assets" ] || bash packaging/assets.sh
rm -rf target/generate-rpm
mkdir -p target/generate-rpm
cargo generate-rpm -p crates/ruroco-server -o target/generate-rpm/ >&2
rpm_file=$(ls target/generate-rpm/*.rpm)
fail() {
    echo "build-rpm.sh: $*" >&2
    exit 1
}
if command -v rpm >/dev/null; then
    version=$(rpm -qp --qf '%{VERSION}' "$rpm_file" 2>/dev/null)
    [ "$(rpm -qp --qf '%{NAME}' "$rpm_file" 2>/dev/null)" = ruroco ] || fail "the package is not named ruroco"
    "target/assets/bin/ruroco-server" --version | grep -q "^ruroco-server ${version}[ +]" ||
        fail "package version $version is not the programs' ($(target/assets/bin/ruroco-server --version))"
    files=$(rpm -qlp "$rpm_file" 2>/dev/null)
    for want in /usr/bin/ruroco-server /usr/bin/ruroco-commander /usr/bin/ruroco-client \
        /usr/lib/ruroco/ruroco-processes \
        /usr/lib/systemd/system/ruroco.socket /usr/lib/systemd/system/ruroco.service \
        /usr/lib/systemd/system/ruroco-commander.socket /usr/lib/systemd/system/ruroco-commander.service \
        /usr/lib/sysusers.d/ruroco.conf /usr/lib/tmpfiles.d/ruroco.conf \
        /etc/ruroco/config.toml /etc/ruroco/commands.toml /etc/fail2ban/filter.d/ruroco.conf \
        /usr/share/man/man1/ruroco-server.1.gz /usr/share/man/man5/config.toml.5.gz \
        /usr/share/bash-completion/completions/ruroco-client.bash \
        /usr/share/doc/ruroco/operators.md /usr/share/doc/ruroco/troubleshooting.md \
        /usr/share/doc/ruroco/reference/config-toml.md; do
        grep -qx "$want" <<<"$files" || fail "missing in $rpm_file: $want"
    done
    config=$(rpm -qcp "$rpm_file" 2>/dev/null)
    for want in /etc/ruroco/config.toml /etc/ruroco/commands.toml; do
        grep -qx "$want" <<<"$config" || fail "$want is not a config file of the package"
    done
    scripts=$(rpm -qp --scripts "$rpm_file" 2>/dev/null)
    for want in "systemctl try-restart" "name-replaced" "run-pending" "systemd-sysusers"; do
        grep -q "$want" <<<"$scripts" || fail "the scriptlets do not run $want"
    done
    # Unpacked into a root of its own (scriptlets are for a real system): files and modes.
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    rpm --root "$root" --initdb
    rpm --root "$root" -i --nodeps --noscripts --ignorearch "$rpm_file" >&2
    [ "$(stat -c %a "$root/etc/ruroco/commands.toml")" = 600 ] || fail "commands.toml is not 0600"
    [ "$(stat -c %a "$root/usr/bin/ruroco-server")" = 755 ] || fail "ruroco-server is not 0755"
    "$root/usr/bin/ruroco-server" --version >/dev/null || fail "the installed server does not run"
fi
if command -v rpmlint >/dev/null; then
    # Errors fail the build; what packaging/rpm/rpmlint.toml accepts is explained there.
    rpmlint -c packaging/rpm/rpmlint.toml "$rpm_file" >&2 || fail "rpmlint found errors (above)"
fi
echo "$rpm_file"
