#!/usr/bin/env bash
# Checks a release tarball as a user would meet it: its checksum, unpacked, its own
# checksums, installed into a temporary root with its install.sh, the programs linked
# only against the C library (the newest glibc symbol they need is printed), of the right
# version and never killed by a signal in --check (NSS lookups), and the demo (a complete round trip on loopback) run from the
# installed programs. Nothing outside temporary directories is touched.
#   packaging/dist-check.sh target/dist/ruroco-VERSION-TARGET.tar.gz
set -euo pipefail
tarball=$(realpath "$1")
fail() {
    echo "dist check: $*" >&2
    exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$(dirname "$tarball")" && sha256sum -c --quiet SHA256SUMS) || fail "the tarball's checksum does not match"
tar -xzf "$tarball" -C "$work"
name=$(basename "$tarball" .tar.gz)
unpacked="$work/$name"
[ -d "$unpacked" ] || fail "the tarball does not unpack into $name/"
(cd "$unpacked" && sha256sum -c --quiet SHA256SUMS) || fail "a file does not match SHA256SUMS"
# Every file is listed.
listed=$(cut -d' ' -f3- "$unpacked/SHA256SUMS" | sort)
present=$(cd "$unpacked" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort)
[ "$listed" = "$present" ] || fail "SHA256SUMS does not list exactly the files: $(diff <(echo "$listed") <(echo "$present") || true)"
# Owned by root in the archive, whoever built it.
owners=$(tar -tvzf "$tarball" | awk '{ print $2 }' | sort -u)
[ "$owners" = "0/0" ] || fail "files in the tarball are not owned by 0/0: $owners"

root="$work/root"
"$unpacked/install.sh" "$root" >/dev/null
for want in usr/bin/ruroco-server usr/bin/ruroco-commander usr/bin/ruroco-client \
    usr/lib/systemd/system/ruroco.socket usr/lib/systemd/system/ruroco.service \
    usr/lib/systemd/system/ruroco-commander.socket usr/lib/systemd/system/ruroco-commander.service \
    usr/lib/sysusers.d/ruroco.conf usr/lib/tmpfiles.d/ruroco.conf \
    etc/ruroco/config.toml etc/ruroco/commands.toml etc/fail2ban/filter.d/ruroco.conf \
    usr/share/man/man1/ruroco-server.1 usr/share/man/man1/ruroco-client-send.1 \
    usr/share/man/man5/config.toml.5 usr/share/man/man5/commands.toml.5 usr/share/man/man5/client.toml.5 \
    usr/share/bash-completion/completions/ruroco-client.bash \
    usr/share/zsh/vendor-completions/_ruroco-server \
    usr/share/fish/vendor_completions.d/ruroco-commander.fish \
    usr/share/doc/ruroco/operators.md usr/share/doc/ruroco/troubleshooting.md \
    usr/share/doc/ruroco/reference/config-toml.md usr/share/doc/ruroco/site/index.html \
    usr/share/doc/ruroco/site/operators.html usr/share/doc/ruroco/site/reference/config-toml.html \
    usr/share/doc/ruroco/site/gui.png; do
    [ -f "$root/$want" ] || fail "install.sh did not install $want"
done
[ "$(stat -c %a "$root/etc/ruroco/commands.toml")" = 600 ] || fail "commands.toml is not 0600"
version=${name#ruroco-}
version=${version%%-*}
newest=""
# A config whose socket_user exists for no NSS module: the lookup asks every module.
scratch_config="$work/nss-check.toml"
printf 'ips = ["127.0.0.1"]\nconfig_dir = "%s"\nsocket_user = "no-such-user"\n' "$work" >"$scratch_config"
for program in ruroco-server ruroco-commander ruroco-client; do
    # Dynamically linked against the C library (scripts/release-build.sh says why), and
    # nothing else outside it.
    libs=$(ldd "$root/usr/bin/$program" | awk '/=>/ { print $1 }' | sort | tr '\n' ' ')
    grep -q "libc.so.6" <<<"$libs" || fail "$program is not linked against libc.so.6: $libs"
    for lib in $libs; do
        case "$lib" in
            libc.so.6 | libm.so.6 | libgcc_s.so.1 | libpthread.so.0 | libdl.so.2 | librt.so.1) ;;
            *) fail "$program needs $lib, which not every Linux has" ;;
        esac
    done
    v=$(objdump -T "$root/usr/bin/$program" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -n 1)
    newest=$(printf '%s\n%s\n' "$newest" "$v" | sort -V | tail -n 1)
    # User and group lookups go through every NSS module nsswitch.conf names (systemd's on
    # Debian 12): a status, never a signal.
    rc=0
    "$root/usr/bin/$program" --check --config "$scratch_config" >/dev/null 2>&1 || rc=$?
    [ "$rc" -lt 128 ] || fail "$program --check ended with status $rc (a signal)"
    "$root/usr/bin/$program" --version | grep -q "^$program $version " ||
        fail "$program --version does not say $version: $("$root/usr/bin/$program" --version)"
done
# A second install keeps the configuration the admin edited.
echo "# edited" >>"$root/etc/ruroco/config.toml"
"$unpacked/install.sh" "$root" >/dev/null
grep -q "# edited" "$root/etc/ruroco/config.toml" || fail "a second install overwrote config.toml"
out=$(RUROCO_BIN="$root/usr/bin" bash "$unpacked/demo.sh" 2>&1) || fail "the demo failed: $out"
grep -q "demo OK" <<<"$out" || fail "the demo did not end with OK: $out"
echo "dist check: OK ($name: checksums, install into a temporary root, programs need $newest, --check with NSS, demo)"
