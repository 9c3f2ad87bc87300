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
#
# It also checks that the size a person gave the window is the size it opens with next
# time (eframe's storage, $XDG_DATA_HOME/ruroco-gui/app.ron). What the window costs is
# measured by `cargo run --release -p ruroco-bench -- gui`.
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
export XDG_DATA_HOME="$work/data"
# As an earlier version left them: eframe's directory and app.ron readable by anyone.
mkdir -p -m 755 "$XDG_DATA_HOME/ruroco-gui"
echo '{}' >"$XDG_DATA_HOME/ruroco-gui/app.ron"
chmod 644 "$XDG_DATA_HOME/ruroco-gui/app.ron"
openbox >/dev/null 2>&1 &
wm_pid=$!
sleep 0.5
# Starts the window (software rendering, as on a machine without a GPU) and sets
# $gui_pid and $window.
start_gui() {
    LIBGL_ALWAYS_SOFTWARE=1 RUROCO_CONF_DIR="$conf" "$bin" >"$work/gui.log" 2>&1 &
    gui_pid=$!
    local started
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
}
# Closes it with the window manager's close request (WM_DELETE_WINDOW), as the title
# bar's close button; it must exit 0.
close_gui() {
    wmctrl -c ruroco
    for _ in $(seq 100); do
        kill -0 "$gui_pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$gui_pid" 2>/dev/null; then
        echo "ruroco-gui did not close on the close request" >&2
        exit 1
    fi
    local status=0
    wait "$gui_pid" || status=$?
    gui_pid=""
    [ "$status" = 0 ] || { cat "$work/gui.log" >&2; echo "ruroco-gui exited $status" >&2; exit 1; }
    echo "closed by the window manager, exit 0"
}
start_gui
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
# The filter focused by keyboard (shot as PNG-focused.png).
# A click on an empty part of the window gives it the keyboard, as for a person.
xdotool mousemove --window "$window" 450 400 click 1
sleep 0.3
xdotool key ctrl+f
sleep 0.5
import -window "$window" "${png%.png}-focused.png"
# A size given by hand is the size of the next start.
xdotool windowsize --sync "$window" 700 500 2>/dev/null || xdotool windowsize "$window" 700 500
sleep 1
close_gui
[ -s "$XDG_DATA_HOME/ruroco-gui/app.ron" ] || { echo "nothing kept in $XDG_DATA_HOME/ruroco-gui/app.ron" >&2; exit 1; }
# What it keeps (server names, addresses, last results) is the user's alone.
modes=$(stat -c %a "$XDG_DATA_HOME/ruroco-gui" "$XDG_DATA_HOME/ruroco-gui/app.ron" | tr '\n' ' ')
[ "$modes" = "700 600 " ] || { echo "app.ron and its directory are $modes, not 700 600" >&2; exit 1; }
echo "app.ron kept 0600 in a 0700 directory"
start_gui
sleep 1
geometry=$(xdotool getwindowgeometry "$window" | awk '/Geometry/ { print $2 }')
[ "$geometry" = 700x500 ] || { echo "reopened at $geometry, not at the 700x500 it was closed at" >&2; exit 1; }
echo "reopened at the size it was closed at: $geometry"
close_gui
