#!/usr/bin/env bash
# What the desktop app costs, measured in a real window under Xvfb with a window manager:
# start to window, RSS, CPU while idle with and without a focused text field (a blinking
# cursor), and click to command — a real commander and server on loopback, the window's
# Send button clicked with the pointer, timed until the command has run. Prints figures;
# asserts nothing about speed.
#
#   scripts/gui-measure.sh [GUI] [BIN]   default: target/release-gui/ruroco-gui, target/release
#
# Build first: cargo build --profile release-gui -p ruroco-gui && cargo build --release
# -p ruroco-server -p ruroco-commander -p ruroco-client. Needs what gui-screenshot.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
gui=$(realpath "${1:-target/release-gui/ruroco-gui}")
bin=$(realpath "${2:-target/release}")
if [ "${_RUROCO_IN_XVFB:-}" != 1 ]; then
    export _RUROCO_IN_XVFB=1
    exec xvfb-run --auto-servernum --server-args="-screen 0 1280x800x24" bash "$0" "$gui" "$bin"
fi
work=$(mktemp -d)
pids=()
cleanup() {
    # Stop only what this script started, by PID.
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -m 700 "$work/etc" "$work/conf"
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/ruroco-client" gen > "$work/conf/local.key"
chmod 600 "$work/conf/local.key"
cp "$work/conf/local.key" "$work/etc/local.key"
cat > "$work/etc/config.toml" <<TOML
ips = ["127.0.0.1"]
address = "127.0.0.1:$port"
config_dir = "$work/etc"
socket_user = ""
socket_group = ""
allow_non_routable_ips = true
max_requests_per_second = 1000
TOML
# The command notes when it ran, in nanoseconds.
cat > "$work/etc/commands.toml" <<TOML
[commands]
default = "date +%s%N >> $work/ran"
TOML
chmod 600 "$work/etc/commands.toml"
cat > "$work/conf/client.toml" <<TOML
[servers.local]
address = "127.0.0.1:$port"
key = "local.key"
command = "default"
TOML
"$bin/ruroco-commander" --config "$work/etc/config.toml" --commands "$work/etc/commands.toml" 2>"$work/commander.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/etc/ruroco.socket" ] && break; sleep 0.05; done
"$bin/ruroco-server" --config "$work/etc/config.toml" 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.05; done
openbox >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

export XDG_DATA_HOME="$work/data"
LIBGL_ALWAYS_SOFTWARE=1 RUROCO_CONF_DIR="$work/conf" "$gui" >"$work/gui.log" 2>&1 &
gui_pid=$!
pids+=("$gui_pid")
started=$(date +%s%N)
window=""
for _ in $(seq 400); do
    window=$(xdotool search --onlyvisible --name '^ruroco$' 2>/dev/null | head -n 1 || true)
    [ -n "$window" ] && break
    sleep 0.01
done
[ -n "$window" ] || { cat "$work/gui.log" >&2; echo "no window" >&2; exit 1; }
echo "start to window: $(( ($(date +%s%N) - started) / 1000000 )) ms"
sleep 2
echo "RSS: $(awk '/^VmRSS/ { print $2 " " $3 }' "/proc/$gui_pid/status")"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$gui_pid/stat"; }
cpu_over() {
    local before after
    before=$(cpu_ticks)
    sleep "$1"
    after=$(cpu_ticks)
    awk -v d=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$1" 'BEGIN { printf "%.2f%% of a core", 100 * d / hz / s }'
}
echo "CPU idle (10 s): $(cpu_over 10)"
# A click on an empty part of the window gives it the keyboard; Ctrl+F focuses the filter.
xdotool mousemove --window "$window" 450 400 click 1
sleep 0.3
xdotool key ctrl+f
sleep 0.5
[ -z "${RUROCO_GUI_SHOT:-}" ] || import -window "$window" "$RUROCO_GUI_SHOT"
echo "CPU with the filter focused, cursor blinking (10 s): $(cpu_over 10)"
xdotool key Escape
# The first row's Send button: its left end, whatever the name's length.
# How many times the command ran so far.
runs() { if [ -e "$work/ran" ]; then wc -l < "$work/ran"; else echo 0; fi; }
times=()
for i in $(seq 10); do
    before=$(runs)
    clicked=$(date +%s%N)
    xdotool mousemove --window "$window" 16 100 click 1
    for _ in $(seq 500); do
        [ "$(runs)" -gt "$before" ] && break
        sleep 0.002
    done
    [ "$(runs)" -gt "$before" ] || { echo "click $i ran nothing" >&2; sed 's/^/    /' "$work/server.log" >&2; exit 1; }
    ran=$(tail -n 1 "$work/ran")
    times+=($(( (ran - clicked) / 100000 )))
    # Past the double-click guard (600 ms).
    sleep 0.8
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 / 10 } END { printf "click to command (%d clicks): median %.1f ms, min %.1f ms, max %.1f ms\n", NR, v[int((NR + 1) / 2)], v[1], v[NR] }'
