#!/bin/sh
# Installs this ruroco release: ./install.sh [ROOT]
#
# Without ROOT it installs into / (as root); with ROOT into that directory (an image, a
# chroot, or a test). Programs go to usr/bin, systemd units, sysusers.d and tmpfiles.d
# files to usr/lib, man pages and shell completions to usr/share, the example
# configuration to etc/ruroco (never over an existing file). Nothing is started or enabled.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${1:-}
root=${root%/}

install_file() { # MODE SOURCE DEST_DIR [NAME]
    mkdir -p "$root$3"
    cp "$here/$2" "$root$3/${4:-$(basename "$2")}"
    chmod "$1" "$root$3/${4:-$(basename "$2")}"
}

for program in ruroco-server ruroco-commander ruroco-client; do
    install_file 755 "bin/$program" /usr/bin
done
for unit in ruroco.socket ruroco.service ruroco-commander.socket ruroco-commander.service; do
    install_file 644 "systemd/$unit" /usr/lib/systemd/system
done
install_file 644 sysusers.d/ruroco.conf /usr/lib/sysusers.d
install_file 644 tmpfiles.d/ruroco.conf /usr/lib/tmpfiles.d
install_file 644 fail2ban/filter.d/ruroco.conf /etc/fail2ban/filter.d
for page in "$here"/man/*.1; do install_file 644 "man/$(basename "$page")" /usr/share/man/man1; done
for page in "$here"/man/*.5; do install_file 644 "man/$(basename "$page")" /usr/share/man/man5; done
for f in "$here"/completions/bash/*; do install_file 644 "completions/bash/$(basename "$f")" /usr/share/bash-completion/completions; done
for f in "$here"/completions/zsh/*; do install_file 644 "completions/zsh/$(basename "$f")" /usr/share/zsh/vendor-completions; done
for f in "$here"/completions/fish/*; do install_file 644 "completions/fish/$(basename "$f")" /usr/share/fish/vendor_completions.d; done
for doc in "$here"/doc/*.md "$here/doc/LICENSE"; do
    install_file 644 "doc/$(basename "$doc")" /usr/share/doc/ruroco
done
for doc in "$here"/doc/reference/*.md; do
    install_file 644 "doc/reference/$(basename "$doc")" /usr/share/doc/ruroco/reference
done
install_file 644 fail2ban/jail.d/ruroco.conf /usr/share/doc/ruroco/examples fail2ban-jail.conf
# The documentation site: open /usr/share/doc/ruroco/site/index.html.
(cd "$here/doc/site" && find . -type f | sed 's|^\./||') | while IFS= read -r page; do
    dir=$(dirname "$page")
    [ "$dir" = . ] && dir="" || dir="/$dir"
    install_file 644 "doc/site/$page" "/usr/share/doc/ruroco/site$dir"
done
# The configuration: the example only where there is none yet. commands.toml is root's.
mkdir -p "$root/etc/ruroco"
chmod 750 "$root/etc/ruroco"
[ -e "$root/etc/ruroco/config.toml" ] || install_file 640 config/config.toml /etc/ruroco
[ -e "$root/etc/ruroco/commands.toml" ] || install_file 600 config/commands.toml /etc/ruroco

echo "ruroco installed into ${root:-/}"
if [ -z "$root" ] && [ "$(id -u)" = 0 ]; then
    # The ruroco user and group, the directories with their owners and modes.
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers /usr/lib/sysusers.d/ruroco.conf
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/ruroco.conf
        chgrp ruroco /etc/ruroco/config.toml
    else
        echo "no systemd-sysusers here: create the system user and group ruroco, then"
        echo "  chgrp ruroco /etc/ruroco /etc/ruroco/config.toml"
    fi
    echo "next: edit /etc/ruroco/config.toml (ips) and commands.toml, add a key"
    echo "      (ruroco-client gen), then:"
    echo "      systemctl daemon-reload && systemctl enable --now ruroco-commander.socket ruroco-commander ruroco.socket ruroco"
fi
