#!/usr/bin/env bash
# A complete local round trip: build the three programs (or take them from RUROCO_BIN, an
# absolute path), start a commander and a server on loopback in a temporary directory,
# send one command with the client, show that it ran, and stop both. Nothing outside the
# temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."

# RUROCO_BIN: a directory that already holds the three programs (an installed release);
# otherwise they are built here.
if [ -n "${RUROCO_BIN:-}" ]; then
    bin=$RUROCO_BIN
else
    echo "==> building ruroco-server, ruroco-commander and ruroco-client"
    cargo build --locked --quiet -p ruroco-server -p ruroco-commander -p ruroco-client
    bin=target/debug
fi

work=$(mktemp -d)
server_pid=""
commander_pid=""
cleanup() {
    # Stop only what this script started, by PID.
    [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    [ -n "$commander_pid" ] && kill -TERM "$commander_pid" 2>/dev/null && wait "$commander_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/etc" "$work/client"
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 34021)

echo "==> generating a key"
"$bin/ruroco-client" gen > "$work/client/demo.key"
(umask 077; cp "$work/client/demo.key" "$work/etc/demo.key")

cat > "$work/etc/config.toml" <<TOML
ips = ["127.0.0.1"]
address = "127.0.0.1:$port"
config_dir = "$work/etc"
# Its own state (pending undos, the commander's lock): never another commander's.
state_dir = "$work/state"
# Unprivileged demo: leave the socket's owner alone and allow loopback clients.
socket_user = ""
socket_group = ""
allow_non_routable_ips = true
TOML
cat > "$work/etc/commands.toml" <<TOML
[commands]
default = "echo \"ruroco ran 'default' for \$RUROCO_IP at \$(date -u +%H:%M:%S)\" >> $work/ran.log"
TOML
chmod 600 "$work/etc/commands.toml"

echo "==> starting ruroco-commander and ruroco-server on 127.0.0.1:$port"
"$bin/ruroco-commander" --config "$work/etc/config.toml" --commands "$work/etc/commands.toml" 2> "$work/commander.log" &
commander_pid=$!
for _ in $(seq 100); do [ -S "$work/etc/ruroco.socket" ] && break; sleep 0.05; done
"$bin/ruroco-server" --config "$work/etc/config.toml" 2> "$work/server.log" &
server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.05; done

echo "==> sending: ruroco-client send -a 127.0.0.1:$port -k demo.key -c default"
RUROCO_CONF_DIR="$work/client" "$bin/ruroco-client" send -a "127.0.0.1:$port" -k "$work/client/demo.key" -c default

for _ in $(seq 100); do [ -s "$work/ran.log" ] && break; sleep 0.05; done
echo "==> server log"
sed 's/^/    /' "$work/server.log"
echo "==> commander log"
sed 's/^/    /' "$work/commander.log"
if [ -s "$work/ran.log" ]; then
    echo "==> the command ran:"
    sed 's/^/    /' "$work/ran.log"
    echo "==> demo OK"
else
    echo "==> the command did not run" >&2
    exit 1
fi
