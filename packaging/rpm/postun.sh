# ruroco (RPM %postun; $1: 0 on erase). RPM has no purge: the replay floors
# (/var/lib/ruroco), /var/lib/ruroco-commander, keys and edited configuration
# (as .rpmsave) stay; remove them by hand to forget everything.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
