# ruroco (RPM %post; $1: 1 on install, 2 or more on upgrade): the ruroco user and
# directories, the configuration's owners; after an upgrade, the daemons systemd runs restart.
systemd-sysusers /usr/lib/sysusers.d/ruroco.conf >/dev/null 2>&1 || :
systemd-tmpfiles --create /usr/lib/tmpfiles.d/ruroco.conf >/dev/null 2>&1 || :
chgrp ruroco /etc/ruroco /etc/ruroco/config.toml 2>/dev/null || :
chmod 0750 /etc/ruroco 2>/dev/null || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
/usr/bin/ruroco-server --check-units || :
if [ "$1" -ge 2 ]; then
    # try-restart: what runs restarts as the new version; nothing stopped is started.
    if [ -d /run/systemd/system ]; then
        systemctl try-restart ruroco-commander.service ruroco.service >/dev/null 2>&1 || :
    fi
    # Daemons run as plain processes are named, never restarted (ruroco-processes says why).
    /usr/lib/ruroco/ruroco-processes name-replaced || :
else
    echo "ruroco: edit /etc/ruroco/config.toml (ips) and /etc/ruroco/commands.toml, add a key"
    echo "ruroco: (ruroco-client gen), then: systemctl enable --now ruroco-commander.socket ruroco-commander ruroco.socket ruroco"
fi
