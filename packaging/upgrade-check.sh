#!/usr/bin/env bash
# The Debian package's upgrade, checked on this machine (root, disposable; run by
# build-deb.sh --install-check with the package installed): OLD.deb and NEW.deb differ in
# their version string.
#   1. nothing running: upgrading starts nothing;
#   2. commander and server running (as plain processes, or as units where systemd runs):
#      after the upgrade both run the new binaries, report the new version, and a knock
#      still runs its command.
# The daemons are left running: the remove check that follows must stop them.
set -euo pipefail
trap 'echo "upgrade check: failed at line $LINENO" >&2' ERR
old=$1
new=$2
[ -f "$old" ] && [ -f "$new" ] || { echo "upgrade check: need two packages, got '$old' and '$new'" >&2; exit 1; }
fail() {
    echo "upgrade check: $*" >&2
    exit 1
}
# "PID EXE" of each process of ours.
ours() {
    for dir in /proc/[0-9]*; do
        exe=$(readlink "$dir/exe" 2>/dev/null) || continue
        case "$exe" in
            /usr/bin/ruroco-server* | /usr/bin/ruroco-commander*) echo "${dir#/proc/} $exe" ;;
        esac
    done
}
wait_for() { # FILE TEXT: up to 10 s
    for _ in $(seq 200); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
new_label=$(dpkg-deb -f "$new" Version)
new_label=${new_label#*+}
new_label=${new_label%-*}

[ -z "$(ours)" ] || fail "daemons of ours already run: $(ours)"
dpkg -i "$new" >/dev/null
[ -z "$(ours)" ] || fail "the upgrade started what was not running: $(ours)"
/usr/bin/ruroco-server --version | grep -q "+$new_label " || fail "the new package's server is not +$new_label"
dpkg -i "$old" >/dev/null 2>&1
! /usr/bin/ruroco-server --version | grep -q "+$new_label " || fail "the downgrade kept the new binaries"

# A server and a commander of the old version, on loopback, as plain processes.
work=$(mktemp -d)
chmod 755 "$work"
mkdir -p "$work/etc" "$work/floors" "$work/state" "$work/client"
chown ruroco:ruroco "$work/floors"
port=$((40000 + RANDOM % 20000))
/usr/bin/ruroco-client gen >"$work/client/k.key"
install -m 640 -o root -g ruroco "$work/client/k.key" "$work/etc/k.key"
chgrp ruroco "$work/etc"
chmod 750 "$work/etc"
cat >"$work/etc/config.toml" <<TOML
ips = ["127.0.0.1"]
address = "127.0.0.1:$port"
config_dir = "$work/etc"
blocklist_dir = "$work/floors"
socket_dir = "$work"
state_dir = "$work/state"
socket_user = "ruroco"
socket_group = "ruroco"
allow_non_routable_ips = true
TOML
chmod 640 "$work/etc/config.toml"
chgrp ruroco "$work/etc/config.toml"
cat >"$work/etc/commands.toml" <<TOML
[commands]
default = "echo \$RUROCO_IP >> $work/ran"
TOML
chmod 600 "$work/etc/commands.toml"
setsid /usr/bin/ruroco-commander --config "$work/etc/config.toml" </dev/null >"$work/commander.log" 2>&1 &
wait_for "$work/commander.log" "listening on" || fail "commander did not start: $(cat "$work/commander.log")"
setsid setpriv --reuid=ruroco --regid=ruroco --init-groups \
    /usr/bin/ruroco-server --config "$work/etc/config.toml" </dev/null >"$work/server.log" 2>&1 &
wait_for "$work/server.log" "listening on" || fail "server did not start: $(cat "$work/server.log")"
knock() {
    RUROCO_CONF_DIR="$work/client" /usr/bin/ruroco-client send -a "127.0.0.1:$port" \
        -k "$work/client/k.key" -c default >/dev/null
    for _ in $(seq 200); do
        [ "$(wc -l <"$work/ran" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
        sleep 0.05
    done
    fail "knock $1 did not run: $(cat "$work/server.log" "$work/commander.log" /var/log/ruroco/*.log 2>/dev/null)"
}
knock 1
before=$(ours)
[ "$(wc -l <<<"$before")" = 2 ] || fail "expected two daemons, found: $before"

dpkg -i "$new" >&2
after=$(ours)
echo "before the upgrade: $before" | tr '\n' ' ' >&2
echo >&2
echo "after the upgrade:  $after" | tr '\n' ' ' >&2
echo >&2
[ "$(wc -l <<<"$after")" = 2 ] || fail "expected two daemons after the upgrade, found: $after"
! grep -q deleted <<<"$after" || fail "a daemon still runs the replaced binary: $after"
while read -r pid _; do
    grep -q "^$pid " <<<"$before" && fail "pid $pid was not restarted"
    /proc/"$pid"/exe --version | grep -q "+$new_label " || fail "pid $pid does not report +$new_label"
done <<<"$after"
# What the restarted daemons said when they came up: the new version.
wait_for /var/log/ruroco/ruroco-commander.log "ruroco-commander [^ ]*+$new_label listening on" ||
    fail "the restarted commander did not say +$new_label: $(cat /var/log/ruroco/ruroco-commander.log)"
wait_for /var/log/ruroco/ruroco-server.log "+$new_label" ||
    fail "the restarted server did not say +$new_label: $(cat /var/log/ruroco/ruroco-server.log)"
server_pid=$(awk '$2 == "/usr/bin/ruroco-server" { print $1 }' <<<"$after")
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$server_pid/status")" = "$(id -u ruroco)" ] ||
    fail "the restarted server does not run as ruroco"
knock 2
echo "upgrade check: OK (restarted as +$new_label, knock ran)" >&2
