#!/usr/bin/env bash
# The Debian package operated as the operator guide says, under a real systemd (run by
# packaging/in-systemd.sh: systemd is PID 1 of a throwaway container with only loopback;
# see packaging/build-deb.sh --systemd-check). OLD.deb and NEW.deb differ in their
# version string. Each step prints one line; the first failure ends the check.
#
#   usage (inside the container): systemd-check.sh OLD.deb NEW.deb
#
#  1. `passwd: files systemd` (libnss_systemd): both programs' --check, as root and as
#     ruroco, end with a status and never a signal, with a user only NSS could know too;
#  2. install, --check failing where the server cannot write its metrics, the link fixing
#     it, enable --now; knocks over IPv4 and IPv6 run; journal fields;
#  3. both metrics files in node_exporter's directory (root's, 0755, as Debian makes it),
#     the server's drop counter counting junk;
#  4. `systemctl reload ruroco-commander` with a new command, which then runs, and the
#     packaged open_ssh with the guide's nftables ruleset;
#  5. the commander's sandbox as the guide states it, and its drop-in lifting it;
#  6. kill -9 of the server; the knock that wakes ruroco.socket;
#  7. the watchdog of both daemons (SIGSTOP: replaced within WatchdogSec);
#  8. an upgrade while both run: every knock sent during it runs once, the new version
#     answers;
#  9. `run-pending` as the guide says (and no knock starts a commander meanwhile);
# 10. a reinstall; remove (daemons gone, the pending undo ran) and purge (the original
#     ruroco's floors stay).
set -euo pipefail
old=${1:?usage: systemd-check.sh OLD.deb NEW.deb}
new=${2:?usage: systemd-check.sh OLD.deb NEW.deb}
started=$(date +%s)
step() { echo "[$(($(date +%s) - started)) s] $*"; }
fail() {
    echo "systemd check FAILED: $*" >&2
    for unit in ruroco ruroco-commander; do
        echo "--- journal of $unit" >&2
        journalctl -u "$unit" --no-pager -n 40 >&2 2>/dev/null || true
    done
    exit 1
}
wait_until() { # SECONDS COMMAND…: polls every 0.1 s
    local limit=$(($1 * 10))
    shift
    for _ in $(seq "$limit"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
# A status of 128 or more is a signal (139: SIGSEGV).
no_signal() { # WHAT COMMAND…
    local what=$1 rc=0
    shift
    "$@" >/tmp/out 2>&1 || rc=$?
    [ "$rc" -lt 128 ] || fail "$what ended with status $rc (a signal): $(cat /tmp/out)"
}

[ "$(cat /proc/1/comm)" = systemd ] || fail "not under systemd (PID 1 is $(cat /proc/1/comm))"
dpkg-deb -f "$old" Version >/dev/null || fail "no package $old"
new_version=$(dpkg-deb -f "$new" Version)
new_label=${new_version#*+}
new_label=${new_label%-*}

# 1. NSS through systemd, as on a stock Debian 12.
sed -i -e 's/^passwd:.*/passwd:         files systemd/' -e 's/^group:.*/group:          files systemd/' \
    /etc/nsswitch.conf
grep -q "^passwd: *files systemd" /etc/nsswitch.conf || fail "nsswitch.conf was not changed"
[ -e /usr/lib/x86_64-linux-gnu/libnss_systemd.so.2 ] || [ -e /usr/lib/aarch64-linux-gnu/libnss_systemd.so.2 ] ||
    fail "libnss_systemd is missing (apt-get install libnss-systemd)"
dpkg -i "$old" >/tmp/dpkg.log 2>&1 || fail "dpkg -i $old: $(cat /tmp/dpkg.log)"
getent passwd ruroco >/dev/null || fail "the package made no ruroco user"
no_signal "ruroco-server --check as root" ruroco-server --check --config /etc/ruroco/config.toml
no_signal "ruroco-commander --check as root" ruroco-commander --check --config /etc/ruroco/config.toml
no_signal "ruroco-server --check as ruroco" \
    setpriv --reuid=ruroco --regid=ruroco --init-groups ruroco-server --check --config /etc/ruroco/config.toml
no_signal "ruroco-commander --check as ruroco" \
    setpriv --reuid=ruroco --regid=ruroco --init-groups ruroco-commander --check --config /etc/ruroco/config.toml
# A user that exists for no NSS module: each lookup goes through libnss_systemd too.
sed 's/^socket_user = .*/socket_user = "no-such-user"/' /etc/ruroco/config.toml >/tmp/nouser.toml
no_signal "ruroco-commander --check with an unknown socket_user" \
    ruroco-commander --check --config /tmp/nouser.toml
grep -q "no-such-user" /tmp/out || fail "the unknown user is not named: $(cat /tmp/out)"
no_signal "ruroco-server --check with an unknown socket_user" ruroco-server --check --config /tmp/nouser.toml
step "1. --check of both programs, as root and as ruroco, with passwd: files systemd: no signal"

# 2. Configure as the guide says, on loopback.
client=$(mktemp -d)
ruroco-client gen >"$client/c.key"
chmod 600 "$client/c.key"
install -m 640 -o root -g ruroco "$client/c.key" /etc/ruroco/c.key
mkdir -p /srv/check
sed -i -e 's/^ips = .*/ips = ["127.0.0.1", "::1"]/' \
    -e 's/^allow_non_routable_ips = .*/allow_non_routable_ips = true/' \
    -e 's/^max_requests_per_second = .*/max_requests_per_second = 100/' \
    -e 's|^# metrics_dir = .*|metrics_dir = "/var/lib/prometheus/node-exporter"|' /etc/ruroco/config.toml
cat >/etc/ruroco/commands.toml <<'TOML'
[commands]
knock = "echo $RUROCO_IP >> /srv/check/knocks"
opened = { cmd = "echo open $RUROCO_IP >> /srv/check/undo", undo = "echo closed $RUROCO_IP >> /srv/check/undo", undo_after_sec = 3600 }
sandbox = "{ id -u; runuser -u nobody -- id -u && echo runuser ok; touch /home/ruroco-check && echo home ok; ls /tmp/ruroco-host-tmp && echo host tmp ok; } > /srv/check/sandbox 2>&1"
TOML
chmod 600 /etc/ruroco/commands.toml
touch /tmp/ruroco-host-tmp
# node_exporter's textfile directory as Debian's package makes it.
install -d -o root -g root -m 0755 /var/lib/prometheus/node-exporter
if out=$(ruroco-server --check --config /etc/ruroco/config.toml 2>&1); then
    fail "--check passed although the server cannot write its metrics: $out"
fi
grep -q "metrics_dir /var/lib/prometheus/node-exporter: the server's user \`ruroco\` cannot write there" <<<"$out" ||
    fail "--check did not name the metrics directory: $out"
# The fix the check prints, pasted.
fix=$(grep -o "ln -s [^ ]* [^ ]*" <<<"$out")
[ -n "$fix" ] || fail "no ln -s line in: $out"
eval "$fix"
out=$(ruroco-server --check --config /etc/ruroco/config.toml 2>&1) || fail "--check after the link: $out"
out=$(ruroco-commander --check --config /etc/ruroco/config.toml 2>&1) || fail "commander --check: $out"
systemctl enable --now ruroco-commander.socket ruroco-commander.service ruroco.socket ruroco.service \
    >/tmp/enable.log 2>&1 || fail "enable --now: $(cat /tmp/enable.log)"
wait_until 10 systemctl is-active ruroco.service ruroco-commander.service ||
    fail "the daemons did not become active"
# The block of the documentation marked `<!-- doc-test: NAME -->`, without its fences.
doc_block() {
    awk -v marker="<!-- doc-test: $1 -->" '
        $0 == marker { found = 1; next }
        found && !open && /^```/ { open = 1; next }
        open && /^```$/ { exit }
        open { print }' /src/docs/*.md
}
count() { wc -l <"$1" 2>/dev/null || echo 0; }
# Whether FILE has more than N lines (evaluated at each poll).
more_than() { [ "$(count "$1")" -gt "$2" ]; }
knock() { # ADDRESS COMMAND [IP]
    local ip=()
    [ -z "${3:-}" ] || ip=(--ip "$3" --permissive)
    RUROCO_CONF_DIR="$client" ruroco-client send -a "$1" -k "$client/c.key" -c "$2" "${ip[@]}" >/dev/null 2>&1
}
knock 127.0.0.1:80 knock
knock '[::1]:80' knock
wait_until 5 more_than /srv/check/knocks 1 || fail "the knocks did not run"
sort /srv/check/knocks | tr '\n' ' ' | grep -q "127.0.0.1 ::1" ||
    fail "not one knock per family: $(cat /srv/check/knocks)"
# (Read whole first: `| grep -q` stops reading at the first match, and under pipefail
# the writer's SIGPIPE would count as a failure.)
journal=$(journalctl -u ruroco -o json --no-pager)
grep -q '"OUTCOME":"accepted"' <<<"$journal" ||
    fail "the journal has no accepted entry with its fields"
step "2. installed, metrics --check and its fix, enable --now, knocks over IPv4 and IPv6, journal fields"

# 3. Metrics: junk to the port (dropped in the kernel), then a restart (the server writes
# its file at every stop) and both files checked.
for _ in 1 2 3 4 5 6 7; do printf junk >/dev/udp/127.0.0.1/80; done
systemctl restart ruroco.service
wait_until 10 systemctl is-active ruroco.service || fail "ruroco did not come back after a restart"
exporter=/var/lib/prometheus/node-exporter
wait_until 20 test -s "$exporter/ruroco-commander.prom" || fail "no $exporter/ruroco-commander.prom"
[ -L "$exporter/ruroco-server.prom" ] || fail "the server replaced root's link"
drops=$(sed -n 's/^ruroco_server_socket_drops_total \([0-9]*\)$/\1/p' "$exporter/ruroco-server.prom")
[ "${drops:-0}" -ge 7 ] || fail "ruroco_server_socket_drops_total is '${drops}', not ≥ 7: $(cat "$exporter/ruroco-server.prom")"
grep -q '^ruroco_server_datagrams_total{result="accepted"} [1-9]' "$exporter/ruroco-server.prom" ||
    grep -q '^ruroco_server_keys 1$' "$exporter/ruroco-server.prom" ||
    fail "the server's metrics lack its state: $(cat "$exporter/ruroco-server.prom")"
journal=$(journalctl -u ruroco --no-pager)
! grep -q "cannot write metrics file" <<<"$journal" || fail "the server could not write its metrics"
step "3. both metrics files in node_exporter's directory; the drop counter says $drops"

# 4. Reload with a new command: the packaged open_ssh, with the guide's nftables ruleset.
ruleset=$(doc_block nft-ruleset)
[ -n "$ruleset" ] || fail "no nft-ruleset block in docs/"
printf '%s\n' "$ruleset" | nft -f - || fail "the guide's nftables ruleset does not load"
cat >>/etc/ruroco/commands.toml <<'TOML'
added = "echo added $RUROCO_IP >> /srv/check/added"
TOML
sed -n '/^\[commands.open_ssh\]/,/^$/p' /src/packaging/config/commands.toml >>/etc/ruroco/commands.toml
systemctl reload ruroco-commander || fail "systemctl reload ruroco-commander failed"
knock 127.0.0.1:80 added
wait_until 5 test -s /srv/check/added || fail "the command added by a reload did not run"
knock 127.0.0.1:80 open_ssh
knock '[::1]:80' open_ssh
wait_until 5 sh -c 'nft list set inet filter ruroco_ssh | grep -q 127.0.0.1 && nft list set inet filter ruroco_ssh6 | grep -q "::1"' ||
    fail "open_ssh did not put the addresses into the guide's sets: $(nft list ruleset)"
pending=$(ruroco-commander pending)
grep -q "^open_ssh" <<<"$pending" || fail "open_ssh left no pending undo: $pending"
step "4. systemctl reload ruroco-commander: the new command ran; the packaged open_ssh filled the guide's nftables sets (v4 and v6)"

# 5. The sandbox, as the guide states it; then the guide's drop-in.
sandbox() {
    rm -f /srv/check/sandbox
    knock 127.0.0.1:80 sandbox
    wait_until 5 test -s /srv/check/sandbox || fail "the sandbox command did not run"
    sleep 0.3
    cat /srv/check/sandbox
}
result=$(sandbox)
grep -q "^0$" <<<"$result" || fail "the command does not run as root: $result"
! grep -q "runuser ok" <<<"$result" || fail "runuser works under the shipped unit: $result"
! grep -q "home ok" <<<"$result" || fail "/home is writable under the shipped unit: $result"
! grep -q "host tmp ok" <<<"$result" || fail "the host's /tmp is visible under the shipped unit: $result"
dropin=$(doc_block commander-dropin)
[ -n "$dropin" ] || fail "no commander-dropin block in docs/"
mkdir -p /etc/systemd/system/ruroco-commander.service.d
printf '%s\n' "$dropin" >/etc/systemd/system/ruroco-commander.service.d/override.conf
systemctl daemon-reload
systemctl restart ruroco-commander.service
wait_until 10 systemctl is-active ruroco-commander.service || fail "the commander did not start with the drop-in"
result=$(sandbox)
for want in "runuser ok" "home ok" "host tmp ok"; do
    grep -q "$want" <<<"$result" || fail "with the guide's drop-in, not '$want': $result"
done
rm -f /home/ruroco-check
rm -r /etc/systemd/system/ruroco-commander.service.d
systemctl daemon-reload
systemctl restart ruroco-commander.service
step "5. sandbox as stated (no runuser, no /home, private /tmp); the guide's drop-in lifts it"

# 6. kill -9, and the knock that wakes the server.
pid=$(systemctl show -P MainPID ruroco.service)
kill -9 "$pid"
wait_until 10 sh -c "[ \"\$(systemctl show -P MainPID ruroco.service)\" != $pid ] && systemctl is-active ruroco.service" ||
    fail "the server was not restarted after kill -9"
before=$(count /srv/check/knocks)
knock 127.0.0.1:80 knock
wait_until 5 more_than /srv/check/knocks "$before" || fail "no knock ran after kill -9"
systemctl stop ruroco.service
systemctl is-active ruroco.socket >/dev/null || fail "ruroco.socket stopped with the service"
before=$(count /srv/check/knocks)
knock 127.0.0.1:80 knock
wait_until 10 more_than /srv/check/knocks "$before" || fail "the knock that wakes ruroco.socket did not run"
step "6. kill -9 recovered; the knock that woke ruroco.socket ran"

# 7. Watchdog: both frozen at once; each replaced within WatchdogSec (30 s) and RestartSec.
server_pid=$(systemctl show -P MainPID ruroco.service)
commander_pid=$(systemctl show -P MainPID ruroco-commander.service)
kill -STOP "$server_pid" "$commander_pid"
frozen_at=$(date +%s)
wait_until 50 sh -c "s=\$(systemctl show -P MainPID ruroco.service); c=\$(systemctl show -P MainPID ruroco-commander.service);
    [ \"\$s\" != 0 ] && [ \"\$s\" != $server_pid ] && [ \"\$c\" != 0 ] && [ \"\$c\" != $commander_pid ] &&
    systemctl is-active ruroco.service ruroco-commander.service" ||
    fail "the watchdog did not replace both frozen daemons within 50 s"
replaced_after=$(($(date +%s) - frozen_at))
journal=$(journalctl -u ruroco --no-pager)
grep -qi "watchdog timeout" <<<"$journal" || fail "no watchdog timeout in the server's journal"
before=$(count /srv/check/knocks)
knock 127.0.0.1:80 knock
wait_until 5 more_than /srv/check/knocks "$before" || fail "no knock ran after the watchdog"
step "7. watchdog replaced both frozen daemons after ${replaced_after} s"

# 8. Upgrade while both run and knocks keep coming: each runs once; the new version answers.
rm -f /srv/check/upgrade /tmp/sent
(
    for i in $(seq 1 60); do
        ip="10.1.$((i / 250)).$((i % 250 + 1))"
        RUROCO_CONF_DIR="$client" ruroco-client send -a 127.0.0.1:80 -k "$client/c.key" -c knock \
            --ip "$ip" --permissive >/dev/null 2>&1 && echo "$ip" >>/tmp/sent
        sleep 0.05
    done
) &
sender=$!
sleep 0.3
dpkg -i "$new" >/tmp/upgrade.log 2>&1 || fail "the upgrade failed: $(cat /tmp/upgrade.log)"
wait "$sender"
sent=$(count /tmp/sent)
wait_until 15 sh -c "[ \$(grep -c '^10\\.1\\.' /srv/check/knocks) -ge $sent ]" || true
ran=$(grep -c '^10\.1\.' /srv/check/knocks || true)
[ "$ran" = "$sent" ] || fail "$sent knocks sent during the upgrade, $ran ran: $(diff <(sort /tmp/sent) <(grep '^10\.1\.' /srv/check/knocks | sort))"
[ "$(grep '^10\.1\.' /srv/check/knocks | sort | uniq -d | wc -l)" = 0 ] || fail "a knock ran twice during the upgrade"
for unit in ruroco ruroco-commander; do
    pid=$(systemctl show -P MainPID "$unit.service")
    [ "$pid" != 0 ] || fail "$unit is not running after the upgrade"
    "/proc/$pid/exe" --version | grep -q "+$new_label " || fail "$unit does not run +$new_label after the upgrade"
done
journal=$(journalctl -u ruroco --no-pager)
grep -q "+$new_label" <<<"$journal" || fail "the server's journal does not show +$new_label"
step "8. upgraded to $new_version while both ran: $sent knocks sent during it, each ran once"

# 9. run-pending as the guide says.
knock 127.0.0.1:80 opened
wait_until 5 grep -q "^open 127.0.0.1" /srv/check/undo || fail "the command with an undo did not run"
pending=$(ruroco-commander pending)
grep -q "^opened" <<<"$pending" || fail "no pending undo: $pending"
guide=$(grep -ho 'systemctl stop ruroco-commander.socket ruroco-commander && ruroco-commander run-pending' \
    /src/docs/*.md | head -n 1 || true)
[ -n "$guide" ] || fail "the guide does not say how to run pending undos"
eval "$guide" || fail "'$guide' failed"
grep -q "^closed 127.0.0.1" /srv/check/undo || fail "run-pending did not run the undo"
set_after=$(nft list set inet filter ruroco_ssh 2>&1) || fail "ruroco_ssh cannot be listed after run-pending: $set_after"
! grep -q 127.0.0.1 <<<"$set_after" || fail "run-pending left 127.0.0.1 in ruroco_ssh"
knock 127.0.0.1:80 knock
sleep 1
! systemctl is-active ruroco-commander.service >/dev/null || fail "a knock started the commander after run-pending's stop"
systemctl start ruroco-commander.socket ruroco-commander.service
wait_until 10 systemctl is-active ruroco-commander.service || fail "the commander did not start again"
step "9. '$guide' ran the undo; no knock started a commander meanwhile"

# Reinstalling the same version keeps everything running and working.
dpkg -i "$new" >/tmp/reinstall.log 2>&1 || fail "reinstall failed: $(cat /tmp/reinstall.log)"
wait_until 10 systemctl is-active ruroco.service ruroco-commander.service || fail "not active after a reinstall"
before=$(count /srv/check/knocks)
knock 127.0.0.1:80 knock
wait_until 5 more_than /srv/check/knocks "$before" || fail "no knock ran after a reinstall"

# 10. Remove runs what is pending and stops everything; purge forgets everything.
knock 127.0.0.1:80 opened
wait_until 5 sh -c "[ \$(grep -c '^open' /srv/check/undo) -ge 2 ]" || fail "the second open did not run"
dpkg --remove ruroco >/tmp/remove.log 2>&1 || fail "remove failed: $(cat /tmp/remove.log)"
[ "$(grep -c '^closed' /srv/check/undo)" -ge 2 ] || fail "remove did not run the pending undo"
for exe in /proc/[0-9]*/exe; do
    case "$(readlink "$exe" 2>/dev/null)" in
        /usr/bin/ruroco-*) fail "remove left $exe running" ;;
    esac
done
# The original ruroco's floors are not ours to delete.
printf '\x92\x80\xa0' >/etc/ruroco/blocklist.msgpck
dpkg --purge ruroco >/tmp/purge.log 2>&1 || fail "purge failed: $(cat /tmp/purge.log)"
for path in /var/lib/ruroco /var/lib/ruroco-commander /var/lib/ruroco-metrics; do
    [ ! -e "$path" ] || fail "purge left $path"
done
[ "$(ls -A /etc/ruroco)" = blocklist.msgpck ] || fail "purge left or took the wrong files: $(ls -A /etc/ruroco)"
rm -r /etc/ruroco
! getent passwd ruroco >/dev/null || fail "purge left the ruroco user"
step "10. remove ran the pending undo and stopped both; purge removed everything but the original's floors"
echo "systemd check: OK"
