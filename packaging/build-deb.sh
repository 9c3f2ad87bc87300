#!/usr/bin/env bash
# Builds the Debian package of the three programs and checks what it holds.
# Needs cargo-deb (cargo install cargo-deb --locked). Prints the path of the .deb.
#
#   --label LABEL    build version VERSION+LABEL (the programs say so in --version)
#   --no-gui         only the ruroco package, not ruroco-gui
#   --install-check  (root, on a disposable machine) installs the package, checks the user,
#                    permissions and units; upgrades to a build labelled "upgradecheck"
#                    while the daemons run as plain processes (none is restarted, each is
#                    named; another user's lookalike is untouched), removes (nothing of
#                    root's or ruroco's may run; the lookalike still does) and purges it.
#                    Under a real systemd: packaging/systemd-check.sh.
set -euo pipefail
install_check=0
label=""
gui=1
while [ $# -gt 0 ]; do
    case "$1" in
        --install-check) install_check=1 ;;
        --label) label=$2; shift ;;
        --no-gui) gui=0 ;;
        *) echo "usage: build-deb.sh [--label LABEL] [--no-gui] [--install-check]" >&2; exit 2 ;;
    esac
    shift
done
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null; then
    echo "build-deb.sh needs cargo-deb: cargo install cargo-deb --locked" >&2
    exit 1
fi
# Unset rather than empty when there is none: cargo would see a change and rebuild.
if [ -n "$label" ]; then export RUROCO_VERSION_LABEL="$label"; else unset RUROCO_VERSION_LABEL; fi
# The programs ship dynamically linked (see scripts/release-build.sh).
bash packaging/assets.sh
# cargo deb's own errors go to the terminal; only its last line (the path) is kept.
version=$(cargo metadata --no-deps --format-version 1 --locked |
    sed -n 's/.*"name":"ruroco-server","version":"\([^"]*\)".*/\1/p')
deb_version=()
# A labelled build goes to a directory of its own: cargo deb would replace the other.
if [ -n "$label" ]; then
    mkdir -p "target/debian-$label"
    deb_version=(--deb-version "$version+$label" --output "target/debian-$label/")
fi
deb=$(cargo deb -p ruroco-server --no-build --locked "${deb_version[@]}" 2>/dev/null | tail -n 1) || true
[ -f "$deb" ] || cargo deb -p ruroco-server --no-build --locked "${deb_version[@]}" >&2 || true
[ -f "$deb" ] || { echo "cargo deb did not produce a package (its errors are above)" >&2; exit 1; }

contents=$(dpkg-deb -c "$deb")
missing=0
for want in \
    ./usr/bin/ruroco-server ./usr/bin/ruroco-commander ./usr/bin/ruroco-client \
    ./lib/systemd/system/ruroco.socket ./lib/systemd/system/ruroco.service \
    ./lib/systemd/system/ruroco-commander.socket ./lib/systemd/system/ruroco-commander.service \
    ./usr/lib/ruroco/ruroco-processes \
    ./usr/lib/sysusers.d/ruroco.conf ./usr/lib/tmpfiles.d/ruroco.conf \
    ./etc/ruroco/config.toml ./etc/ruroco/commands.toml \
    ./etc/fail2ban/filter.d/ruroco.conf \
    ./usr/share/man/man1/ruroco-server.1.gz ./usr/share/man/man1/ruroco-commander.1.gz \
    ./usr/share/man/man1/ruroco-client.1.gz ./usr/share/man/man1/ruroco-client-send.1.gz \
    ./usr/share/man/man5/config.toml.5.gz ./usr/share/man/man5/commands.toml.5.gz \
    ./usr/share/man/man5/client.toml.5.gz \
    ./usr/share/bash-completion/completions/ruroco-client.bash \
    ./usr/share/zsh/vendor-completions/_ruroco-client \
    ./usr/share/fish/vendor_completions.d/ruroco-client.fish \
    ./usr/share/doc/ruroco/operators.md ./usr/share/doc/ruroco/troubleshooting.md \
    ./usr/share/doc/ruroco/reference/config-toml.md; do
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
            /lib/systemd/system/ruroco-commander.socket /lib/systemd/system/ruroco-commander.service 2>&1)
        [ -z "$out" ] || { echo "systemd-analyze verify: $out" >&2; exit 1; }
    fi
    /usr/bin/ruroco-client --version >&2
    for program in ruroco-server ruroco-commander ruroco-client; do
        # (Read whole first: `| grep -q` stops at the first match, and under pipefail the
        # SIGPIPE of ldd, still writing its last line, would count as a failure.)
        libraries=$(ldd "/usr/bin/$program" 2>&1 || true)
        grep -q "libc.so.6" <<<"$libraries" \
            || { echo "/usr/bin/$program is not linked against the system's libc" >&2; exit 1; }
    done
    scratch=$(mktemp -d)
    /usr/bin/ruroco-client gen >"$scratch/k.key"
    chmod 600 "$scratch/k.key"
    RUROCO_CONF_DIR="$scratch" /usr/bin/ruroco-client send -a localhost:9 -k "$scratch/k.key" >&2 \
        || { echo "the client cannot send to localhost" >&2; exit 1; }
    rm -rf "$scratch"
    # Upgrades start nothing and restart no plain process (they are named instead).
    # (cargo deb empties target/debian when it builds the other package: keep this one, and
    # put it back afterwards.)
    # Both packages are kept under target/ for the check under systemd, which sees only
    # the repository.
    kept=target/systemd-check
    rm -rf "$kept"
    mkdir -p "$kept"
    cp "$deb" "$kept/old.deb"
    cp "$(bash "$0" --no-gui --label upgradecheck | tail -n 1)" "$kept/new.deb"
    lookalike_file=$(mktemp)
    LOOKALIKE_PID_FILE=$lookalike_file bash packaging/upgrade-check.sh "$kept/old.deb" "$kept/new.deb" >&2
    lookalike=$(cat "$lookalike_file")
    rm -f "$lookalike_file"
    cp "$kept/old.deb" "$deb"
    # Remove runs what is still pending: a command's undo must not be lost with the package.
    mkdir -p /var/lib/ruroco-commander
    marker=$(mktemp -u /tmp/ruroco-undo-ran.XXXXXX)
    cat > /var/lib/ruroco-commander/pending-undos.toml <<TOML
[[undo]]
command = "open_ssh"
ip = "203.0.113.7"
due_unix_ms = 4102444800000
undo = "echo \$RUROCO_IP > $marker"
timeout_sec = 5
TOML
    dpkg --remove ruroco >&2
    for exe in /proc/[0-9]*/exe; do
        [ "$exe" != "/proc/$lookalike/exe" ] || continue
        case "$(readlink "$exe" 2>/dev/null)" in
            /usr/bin/ruroco-server* | /usr/bin/ruroco-commander*)
                echo "remove left a daemon running: $exe" >&2
                exit 1
                ;;
        esac
    done
    # Another user's process is theirs to stop.
    readlink "/proc/$lookalike/exe" | grep -q "^/usr/bin/ruroco-commander" \
        || { echo "remove stopped another user's process (pid $lookalike)" >&2; exit 1; }
    kill -TERM "$lookalike"
    [ "$(cat "$marker" 2>/dev/null)" = "203.0.113.7" ] || { echo "remove did not run the pending undo" >&2; exit 1; }
    rm -f "$marker"
    ! grep -q "open_ssh" /var/lib/ruroco-commander/pending-undos.toml 2>/dev/null \
        || { echo "the undo stayed pending after it ran" >&2; exit 1; }
    [ -e /etc/ruroco/config.toml ] || { echo "remove (not purge) took /etc/ruroco" >&2; exit 1; }
    dpkg --purge ruroco >&2
    ! getent passwd ruroco >/dev/null || { echo "purge left the ruroco user" >&2; exit 1; }
    [ ! -e /etc/ruroco ] || { echo "purge left /etc/ruroco" >&2; exit 1; }
    for d in /var/lib/ruroco /var/lib/ruroco-commander /var/lib/ruroco-metrics; do
        [ ! -e "$d" ] || { echo "purge left $d" >&2; exit 1; }
    done
    # The same package under a real systemd (packaging/systemd-check.sh says what it does).
    if command -v systemd-nspawn >/dev/null; then
        echo "== the package under a real systemd (packaging/systemd-check.sh)" >&2
        started=$(date +%s)
        if ! bash packaging/in-systemd.sh "$kept/out" 300 packaging/systemd-check.sh \
            "$kept/old.deb" "$kept/new.deb"; then
            cat "$kept/out/log" >&2
            echo "the check under systemd failed (above; the container's console: $kept/out/boot.log)" >&2
            exit 1
        fi
        grep -v "^[A-Z][a-z][a-z] [0-9]" "$kept/out/log" >&2
        echo "(under systemd: $(($(date +%s) - started)) s)" >&2
    elif [ -n "${CI:-}" ]; then
        echo "CI needs systemd-nspawn (systemd-container) for the check under systemd" >&2
        exit 1
    fi
fi

if [ "$gui" = 1 ]; then
    # The desktop app: a package of its own. The server's package must not pull anything
    # of a window system.
    server_depends=$(dpkg-deb -f "$deb" Depends)
    if grep -Eq "libgl|libegl|libx11|libwayland|libxkb" <<<"$server_depends"; then
        echo "the ruroco package depends on GUI libraries: $server_depends" >&2
        exit 1
    fi
    cargo build --profile release-gui --locked --quiet -p ruroco-gui
    strip --strip-all target/release-gui/ruroco-gui
    gui_deb=$(cargo deb -p ruroco-gui --no-build --no-strip --locked --output target/debian-gui/ 2>/dev/null | tail -n 1) || true
    [ -f "$gui_deb" ] || cargo deb -p ruroco-gui --no-build --no-strip --locked --output target/debian-gui/ >&2 || true
    [ -f "$gui_deb" ] || { echo "cargo deb did not produce ruroco-gui (its errors are above)" >&2; exit 1; }
    gui_contents=$(dpkg-deb -c "$gui_deb")
    for want in ./usr/bin/ruroco-gui ./usr/share/applications/ruroco-gui.desktop \
        ./usr/share/icons/hicolor/scalable/apps/ruroco-gui.svg; do
        grep -q " $want\$" <<<"$gui_contents" || { echo "missing in $gui_deb: $want" >&2; exit 1; }
    done
    if command -v desktop-file-validate >/dev/null; then
        desktop-file-validate packaging/gui/ruroco-gui.desktop
    fi
    if [ "$install_check" = 1 ]; then
        # Installed with what it depends on, started in a real window under Xvfb, shot and
        # closed by the window manager (exit 0), removed again.
        apt-get update -qq >&2 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$(realpath "$gui_deb")" >&2
        RUROCO_GUI_SIZES="500x400 1280x800" bash scripts/gui-screenshot.sh /usr/bin/ruroco-gui target/gui-installed.png >&2
        dpkg --purge ruroco-gui >&2
    fi
    echo "$gui_deb" >&2
fi
echo "$deb"
