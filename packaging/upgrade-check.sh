#!/usr/bin/env bash
# The Debian package's upgrade, checked on this machine (root, disposable; run by
# build-deb.sh --install-check with the package installed): OLD.deb and NEW.deb differ in
# their version string. (Daemons under systemd are checked by packaging/systemd-check.sh.)
#   1. nothing running: upgrading starts nothing;
#   2. commander and server running as plain processes (root and ruroco), and a lookalike
#      of another user (nobody, running /usr/bin/ruroco-commander with an environment
#      that would make `env` run a program): the upgrade restarts none of them and names
#      the two replaced daemons with what to do; a knock still runs its command.
# The daemons are left running: the remove check that follows must stop root's and
# ruroco's and leave nobody's alone (its pid is in $LOOKALIKE_PID_FILE when set).
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

# Another user's process that looks like ours, started with an environment whose first
# entry has no "=" before a path: copied into `env`, it would run that path as root.
other=$(mktemp -d)
chmod 755 "$other"
chown nobody "$other"
evil_marker="$other/evil-ran"
cat >"$other/evil" <<SH
#!/bin/sh
touch $evil_marker
SH
chmod 755 "$other/evil"
cat >"$other/config.toml" <<TOML
config_dir = "$other"
socket_dir = "$other/run"
state_dir = "$other/state"
socket_user = ""
socket_group = ""
TOML
cat >"$other/commands.toml" <<TOML
[commands]
x = "true"
TOML
chown nobody "$other/config.toml" "$other/commands.toml"
chmod 600 "$other/commands.toml"
setsid setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/perl -e '
%ENV = ("-S" . $ARGV[1] . " #" => "x", PATH => "/usr/bin:/bin");
exec { "/usr/bin/ruroco-commander" } "ruroco-commander", "--config", $ARGV[0] or die "exec: $!"' \
    "$other/config.toml" "$other/evil" </dev/null >"$other/log" 2>&1 &
lookalike=$!
wait_for "$other/log" "listening on" || fail "the lookalike did not start: $(cat "$other/log")"
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$lookalike/status")" = "$(id -u nobody)" ] ||
    fail "the lookalike does not run as nobody"
before_all=$(ours)

out=$(dpkg -i "$new" 2>&1) || fail "dpkg -i $new failed: $out"
echo "$out" >&2
after=$(ours)
[ "$after" = "$(sed "s# (deleted)##" <<<"$before_all" | sed 's#$# (deleted)#')" ] ||
    fail "the upgrade restarted or stopped a plain process: before $before_all; after $after"
[ ! -e "$evil_marker" ] || fail "the upgrade ran a program named in another user's environment"
while read -r pid exe; do
    grep -q "^$pid " <<<"$after" || fail "pid $pid ($exe) is gone after the upgrade"
done <<<"$before_all"
for name in ruroco-commander ruroco-server; do
    pid=$(awk -v n="/usr/bin/$name" '$2 == n { print $1 }' <<<"$before")
    grep -q "ruroco: $name (pid $pid, user .*) was not started by systemd and still runs the replaced program; restart it" <<<"$out" ||
        fail "the upgrade did not name $name (pid $pid): $out"
done
[ ! -e /var/log/ruroco ] || fail "the upgrade made /var/log/ruroco"
knock 2
[ -z "${LOOKALIKE_PID_FILE:-}" ] || echo "$lookalike" >"$LOOKALIKE_PID_FILE"
echo "upgrade check: OK (nothing restarted, the replaced daemons named, the lookalike untouched, a knock ran)" >&2
