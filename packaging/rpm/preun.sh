# ruroco (RPM %preun; $1: 0 on erase, 1 or more on upgrade): on erase, stop and disable
# the daemons and run every pending undo, so that no firewall hole stays open.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop ruroco.socket ruroco.service ruroco-commander.socket ruroco-commander.service >/dev/null 2>&1 || :
        systemctl disable ruroco.socket ruroco.service ruroco-commander.socket ruroco-commander.service >/dev/null 2>&1 || :
    fi
    /usr/lib/ruroco/ruroco-processes stop-all || :
    if ! /usr/bin/ruroco-commander run-pending; then
        echo "ruroco: WARNING: not every pending undo ran (see above): what they opened is still open" >&2
    fi
fi
