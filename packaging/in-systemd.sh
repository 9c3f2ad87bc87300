#!/usr/bin/env bash
# Runs SCRIPT [ARGS…] under a real systemd: boots systemd as PID 1 of a throwaway
# container (systemd-nspawn) whose root is this machine's own file tree under a volatile
# overlay — everything the script installs, writes or removes vanishes with the container —
# with a network namespace of its own holding only loopback. The script runs once, as a
# oneshot unit that is part of the boot, then the container powers off.
#
#   usage: in-systemd.sh OUTDIR TIMEOUT_S SCRIPT [ARGS…]
#
# The current directory is bound read-only at /src and the script runs there: SCRIPT and
# paths among ARGS are given relative to it (the container's /tmp is its own). OUTDIR
# (made if missing) is bound at /out: the script's output lands in OUTDIR/log, its exit
# status in OUTDIR/rc, the container's console in OUTDIR/boot.log.
# Exits with the script's status; 124 when it ran out of time, 125 when no script ran.
# The script must not wait for the boot to finish (it is part of it): units it starts
# start at once. Needs root and systemd-nspawn (Debian: systemd-container).
set -euo pipefail
usage="usage: in-systemd.sh OUTDIR TIMEOUT_S SCRIPT [ARGS…]"
out=${1:?$usage}
limit=${2:?$usage}
script=${3:?$usage}
[ -f "$script" ] || { echo "in-systemd.sh: no script $script under $PWD" >&2; exit 125; }
shift 3
command -v systemd-nspawn >/dev/null || {
    echo "in-systemd.sh: systemd-nspawn is missing (apt-get install systemd-container)" >&2
    exit 125
}
[ "$(id -u)" = 0 ] || { echo "in-systemd.sh: needs root" >&2; exit 125; }
mkdir -p "$out"
out=$(realpath "$out")
rm -f "$out/rc" "$out/log" "$out/boot.log"

work=$(mktemp -d /tmp/ruroco-in-systemd.XXXXXX)
mkdir "$work/root"
# nspawn will not take "/" as a directory; the same tree bound elsewhere it takes.
mount --bind / "$work/root"
cleanup() {
    umount "$work/root" 2>/dev/null || umount -l "$work/root" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The arguments, quoted for the unit's shell line.
args=""
for a in "$@"; do args+=" $(printf '%q' "$a")"; done
cat >"$work/runner.sh" <<SH
#!/bin/bash
cd /src && bash $(printf '%q' "$script")$args >/out/log 2>&1
echo \$? >/out/rc
SH
chmod 755 "$work/runner.sh"
cat >"$work/ruroco-check.service" <<UNIT
[Unit]
Description=ruroco check under systemd
After=basic.target
[Service]
Type=oneshot
ExecStart=/ruroco-check-runner.sh
ExecStopPost=/bin/systemctl poweroff --no-block
UNIT

name=ruroco-check-$$
set +e
timeout --kill-after=10 "$limit" systemd-nspawn --quiet --directory="$work/root" \
    --volatile=overlay --machine="$name" --register=no --keep-unit --console=pipe \
    --private-network --bind="$out:/out" --bind-ro="$PWD:/src" \
    --bind-ro="$work/runner.sh:/ruroco-check-runner.sh" \
    --bind-ro="$work/ruroco-check.service:/etc/systemd/system/ruroco-check.service" \
    --boot -- systemd.unit=multi-user.target systemd.wants=ruroco-check.service \
    >"$out/boot.log" 2>&1
rc=$?
set -e
[ -f "$out/rc" ] && exit "$(cat "$out/rc")"
if [ "$rc" = 124 ]; then
    echo "in-systemd.sh: timed out after ${limit} s (see $out/boot.log)" >&2
    exit 124
fi
echo "in-systemd.sh: the container ran no script (nspawn exit $rc; see $out/boot.log)" >&2
exit 125
