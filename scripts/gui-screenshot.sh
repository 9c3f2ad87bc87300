#!/usr/bin/env bash
# Starts ruroco-gui in a real window under Xvfb (Mesa software rendering) with a window
# manager, waits for its window, takes a screenshot, and closes it with the window
# manager's close request; the program must exit 0.
#
#   scripts/gui-screenshot.sh [BINARY] [PNG]     default: target/debug/ruroco-gui, docs/gui.png
#
# Needs xvfb (xvfb-run), openbox, wmctrl, xdotool and imagemagick (import). The window
# shows a few example servers from a temporary configuration directory. With
# RUROCO_GUI_SIZES="500x400 1280x800" it is also resized to each size and shot again
# (PNG-500x400.png, …), as CI keeps them in target/.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/debug/ruroco-gui}")
png=$(realpath -m "${2:-docs/gui.png}")
if [ "${_RUROCO_IN_XVFB:-}" != 1 ]; then
    export _RUROCO_IN_XVFB=1
    exec xvfb-run --auto-servernum --server-args="-screen 0 1280x800x24" bash "$0" "$bin" "$png"
fi
work=$(mktemp -d)
wm_pid=""
gui_pid=""
cleanup() {
    [ -n "$gui_pid" ] && kill "$gui_pid" 2>/dev/null || true
    [ -n "$wm_pid" ] && kill "$wm_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
conf="$work/conf"
mkdir -m 700 "$conf"
cat >"$conf/client.toml" <<'TOML'
[servers.web1]
address = "web1.example.com"
key = "web1.key"
command = "open_ssh"
groups = ["prod"]

[servers.db]
address = "db.example.com:8080"
key = "db.key"
command = "restart_postgres"
groups = ["prod"]

[servers.ci]
address = "192.0.2.44"
key = "ci.key"
command = "deploy"
TOML
openbox >/dev/null 2>&1 &
wm_pid=$!
sleep 0.5
# Software rendering, as on a machine without a GPU.
LIBGL_ALWAYS_SOFTWARE=1 RUROCO_CONF_DIR="$conf" "$bin" >"$work/gui.log" 2>&1 &
gui_pid=$!
started=$(date +%s%N)
window=""
for _ in $(seq 200); do
    window=$(xdotool search --onlyvisible --name '^ruroco$' 2>/dev/null | head -n 1 || true)
    [ -n "$window" ] && break
    kill -0 "$gui_pid" 2>/dev/null || { cat "$work/gui.log" >&2; echo "ruroco-gui exited before its window showed" >&2; exit 1; }
    sleep 0.05
done
[ -n "$window" ] || { cat "$work/gui.log" >&2; echo "no ruroco window within 10 s" >&2; exit 1; }
echo "window $window mapped after $(( ($(date +%s%N) - started) / 1000000 )) ms"
# Let it draw its first frames.
sleep 1
mkdir -p "$(dirname "$png")"
import -window root "$png"
echo "screenshot: $png"
# RUROCO_GUI_SIZES="500x400 1280x800": the window resized to each, shot as PNG-WxH.png.
for size in ${RUROCO_GUI_SIZES:-}; do
    xdotool windowsize "$window" "${size%x*}" "${size#*x}"
    sleep 1
    shot="${png%.png}-$size.png"
    import -window "$window" "$shot"
    echo "screenshot at $size: $shot ($(identify -format '%wx%h' "$shot"))"
done
# The window manager's close request (WM_DELETE_WINDOW), as the title bar's close button.
wmctrl -c ruroco
for _ in $(seq 100); do
    kill -0 "$gui_pid" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$gui_pid" 2>/dev/null; then
    echo "ruroco-gui did not close on the close request" >&2
    exit 1
fi
status=0
wait "$gui_pid" || status=$?
gui_pid=""
[ "$status" = 0 ] || { cat "$work/gui.log" >&2; echo "ruroco-gui exited $status" >&2; exit 1; }
echo "closed by the window manager, exit 0"
