#!/usr/bin/env bash
# The Debian package, installed for real: scripts/package.sh builds it, then
# `dpkg -i` installs it into a throwaway copy-on-write view of this
# machine's root (an overlay over /, in a private mount namespace, entered
# with chroot), so the host's dpkg database and /usr stay untouched and
# nothing races other users of dpkg. In there:
#   - the installed `pr-helper --version` and `man -l` of both pages, and
#     the installed pages and completions are the committed generated files;
#   - `systemd-analyze verify` of the installed units, and the exposure
#     score of `systemd-analyze security --offline=yes` for ours and for
#     qemu-pr-helper's upstream unit (written out below from what upstream
#     ships), ours required to be lower;
#   - the installed service's ExecStart, with its Environment= and
#     EnvironmentFile=, run under systemd-socket-activate on the socket
#     unit's ListenStream, and one command through it with prtool;
#   - dpkg -r, then dpkg -P: every file gone, the conffile only at purge.
# Needs root (mount namespaces). Prints the package size and the scores.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ "${1:-}" != --inside ]; then
    deb=$(NO_BUILD="${NO_BUILD:-}" "$repo/scripts/package.sh" | tail -n 1)
    [ -f "$deb" ] || { echo "package-test: scripts/package.sh gave no package" >&2; exit 1; }
    exec unshare --mount --propagation private "$0" --inside "$deb"
fi

deb=$2
fail() { echo "package-test: FAILED: $*" >&2; exit 1; }
step() { echo "package-test: $*"; }

scratch=$(mktemp -d /tmp/pr-package-test.XXXXXX)
# The mounts vanish with this namespace; the empty directory is removed.
trap 'umount -lR "$scratch" 2>/dev/null || true; rmdir "$scratch" 2>/dev/null || true' EXIT
mount -t tmpfs pr-package-test "$scratch"
mkdir -p "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay pr-package-root \
    -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
root=$scratch/root
mount --rbind /proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs pr-package-run "$root/run"
mount -t tmpfs pr-package-tmp "$root/tmp"
in_root() { chroot "$root" "$@"; }
# The man-db trigger would rebuild the whole index: not what is tested.
rm -f "$root/var/lib/man-db/auto-update"

size=$(stat -c %s "$deb")
step "package $(basename "$deb"): $size bytes ($(( (size + 1023) / 1024 )) KiB)"
# Stripped: the 21 MB of the release build with line tables must not ship.
[ "$size" -lt 8000000 ] || fail "the package is $size bytes: are the binaries stripped?"

cp "$deb" "$root/tmp/pr-helper.deb"
in_root dpkg-query -W -f='${Status}' pr-helper 2>/dev/null | grep -q 'install ok installed' &&
    fail "pr-helper is already installed on this machine; this test installs its own copy"
step "dpkg -i"
in_root dpkg -i /tmp/pr-helper.deb
in_root dpkg-query -W -f='${Status}\n' pr-helper | grep -qx 'install ok installed' || fail "not installed"

step "installed files"
version=$(in_root /usr/bin/pr-helper --version)
echo "  $version"
[[ "$version" == "pr-helper "* ]] || fail "pr-helper --version printed: $version"
in_root /usr/bin/prtool --version | grep -q '^prtool ' || fail "prtool --version"
# pr-helper-slow (the test daemon, a binary of the same cargo package) never ships.
if dpkg-deb -c "$deb" | grep -q 'pr-helper-slow'; then
    fail "the package contains pr-helper-slow, a test binary"
fi
for bin in pr-helper prtool; do
    # .debug_gdb_scripts is loaded data (a pretty-printer hint), not debug info.
    if readelf -SW "$root/usr/bin/$bin" | grep -E '\.debug_' | grep -vq '\.debug_gdb_scripts'; then
        fail "/usr/bin/$bin still has debug sections"
    fi
    file -b "$root/usr/bin/$bin" | grep -q ', stripped' || fail "/usr/bin/$bin is not stripped"
done
for page in pr-helper prtool; do
    text=$(in_root man -l "/usr/share/man/man8/$page.8.gz" 2>&1) || fail "man -l $page.8.gz: $text"
    grep -q "^NAME" <<<"$text" || fail "man -l $page.8.gz shows no NAME section"
    zcat "$root/usr/share/man/man8/$page.8.gz" | cmp -s - "packaging/generated/man/$page.8" ||
        fail "installed $page.8 differs from packaging/generated/man/$page.8"
done
grep -q 'EXIT STATUS' <<<"$(in_root man -l /usr/share/man/man8/pr-helper.8.gz)" || fail "no EXIT STATUS in pr-helper(8)"
cmp -s "$root/usr/share/bash-completion/completions/prtool" packaging/generated/completions/bash/prtool || fail "bash completion"
cmp -s "$root/usr/share/zsh/vendor-completions/_pr-helper" packaging/generated/completions/zsh/_pr-helper || fail "zsh completion"
cmp -s "$root/usr/share/fish/vendor_completions.d/pr-helper.fish" packaging/generated/completions/fish/pr-helper.fish || fail "fish completion"
[ -f "$root/usr/share/doc/pr-helper/copyright" ] || fail "no copyright file"

units=/usr/lib/systemd/system
step "systemd-analyze verify"
for unit in pr-helper.socket pr-helper.service; do
    out=$(in_root systemd-analyze verify "$units/$unit" 2>&1) || fail "verify $unit: $out"
    [ -z "$out" ] || fail "verify $unit printed: $out"
done
# Templates are verified through an instance.
mkdir -p "$root/tmp/units"
for kind in socket service; do
    cp "$root$units/pr-helper@.$kind" "$root/tmp/units/pr-helper@vm1.$kind"
done
out=$(in_root systemd-analyze verify /tmp/units/pr-helper@vm1.socket /tmp/units/pr-helper@vm1.service 2>&1) ||
    fail "verify pr-helper@vm1: $out"
[ -z "$out" ] || fail "verify pr-helper@vm1 printed: $out"
# The template's service section is the main one's, but for its own
# environment file.
diff <(sed -n '/^\[Service\]/,/^\[Install\]/p' "$root$units/pr-helper.service") \
     <(sed -n '/^\[Service\]/,/^\[Install\]/p' "$root$units/pr-helper@.service" | grep -v 'pr-helper-%i') ||
    fail "pr-helper@.service's [Service] differs from pr-helper.service's"

step "systemd-analyze security --offline=yes"
# qemu-pr-helper's unit as upstream QEMU ships it (contrib/systemd), from
# its settings: a simple service in /tmp with a private /tmp, the whole
# file system read-only but /var/run, only Unix sockets, restarted always.
cat >"$root/tmp/units/qemu-pr-helper.service" <<'UNIT'
[Unit]
Description=qemu-pr-helper as upstream QEMU ships it (its settings, for comparison)
[Service]
Type=simple
ExecStart=/usr/bin/qemu-pr-helper
WorkingDirectory=/tmp
PrivateTmp=yes
ProtectSystem=strict
ReadWritePaths=/var/run
RestrictAddressFamilies=AF_UNIX
Restart=always
RestartSec=0
UNIT
score() {
    in_root systemd-analyze security --offline=yes "$1" 2>&1 |
        sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p'
}
ours=$(score "$units/pr-helper.service")
template=$(score /tmp/units/pr-helper@vm1.service)
upstream=$(score /tmp/units/qemu-pr-helper.service)
echo "  exposure: pr-helper.service $ours, pr-helper@.service $template, qemu-pr-helper.service (upstream) $upstream"
[ -n "$ours" ] && [ -n "$upstream" ] || fail "no exposure score"
awk -v a="$ours" -v b="$upstream" 'BEGIN { exit !(a + 0 < b + 0 && a + 0 <= 2.0) }' ||
    fail "our exposure $ours is not below upstream's $upstream and at most 2.0"

step "the unit's command under systemd-socket-activate"
listen=$(sed -n 's/^ListenStream=//p' "$root$units/pr-helper.socket")
[ "$listen" = /run/qemu-pr-helper.sock ] || fail "ListenStream is $listen"
grep -qx 'SocketMode=0600' "$root$units/pr-helper.socket" || fail "SocketMode is not 0600"
exec_start=$(sed -n 's/^ExecStart=//p' "$root$units/pr-helper.service")
# The unit's environment: Environment= lines, then the EnvironmentFile=.
declare -a env_args=()
while IFS= read -r assignment; do
    env_args+=(-E "$assignment")
done < <(sed -n 's/^Environment=//p' "$root$units/pr-helper.service")
options=""
while IFS= read -r file; do
    file=${file#-}
    if [ -f "$root$file" ]; then
        options=$(in_root sh -c ". '$file'; printf %s \"\$PR_HELPER_OPTIONS\"")
    fi
done < <(sed -n 's/^EnvironmentFile=//p' "$root$units/pr-helper.service")
env_args+=(-E "PR_HELPER_OPTIONS=$options")
# ExecStart's $PR_HELPER_OPTIONS is split into words, as systemd does.
command_line=${exec_start//\$PR_HELPER_OPTIONS/$options}
read -r -a argv <<<"$command_line"
echo "  systemd-socket-activate -l $listen ${env_args[*]} ${argv[*]}"
# Not through in_root: a function in the background is a subshell, and the
# TERM below must reach the process that becomes pr-helper (chroot and
# systemd-socket-activate exec into it, so it keeps this pid).
chroot "$root" systemd-socket-activate -l "$listen" "${env_args[@]}" "${argv[@]}" \
    >"$scratch/daemon.log" 2>&1 &
activator=$!
for _ in $(seq 600); do
    [ -S "$root$listen" ] && break
    kill -0 "$activator" 2>/dev/null || { cat "$scratch/daemon.log"; fail "systemd-socket-activate exited"; }
    sleep 0.1
done
[ -S "$root$listen" ] || fail "no socket at $listen"
# A regular file: pr-helper answers, without any ioctl, what a failed SG_IO
# gives (CHECK CONDITION, ABORTED COMMAND), and prtool exits 4 with it.
truncate -s 1M "$root/tmp/disk.img"
set +e
answer=$(in_root /usr/bin/prtool --connect-attempts 1 read-keys /tmp/disk.img 2>&1)
status=$?
set -e
echo "  prtool read-keys through $listen: exit $status: $answer"
[ "$status" -eq 4 ] && grep -q 'ABORTED COMMAND' <<<"$answer" || {
    cat "$scratch/daemon.log"; fail "prtool through the socket: exit $status: $answer"; }
kill -TERM "$activator"
wait "$activator" || true
# The daemon is gone with its activator (it was the same process).
if kill -0 "$activator" 2>/dev/null; then fail "pr-helper still runs after SIGTERM"; fi
grep -q 'connection opened' "$scratch/daemon.log" || { cat "$scratch/daemon.log"; fail "the daemon did not log the connection"; }
grep -q 'shutting down' "$scratch/daemon.log" || { cat "$scratch/daemon.log"; fail "the daemon did not log its shutdown"; }

step "dpkg -r, dpkg -P"
in_root dpkg -r pr-helper
for path in /usr/bin/pr-helper /usr/bin/prtool /usr/share/man/man8/pr-helper.8.gz \
    "$units/pr-helper.service" "$units/pr-helper.socket" "$units/pr-helper@.service" \
    /usr/share/bash-completion/completions/prtool /usr/share/doc/pr-helper/README.md; do
    [ ! -e "$root$path" ] || fail "$path is still there after dpkg -r"
done
[ -f "$root/etc/default/pr-helper" ] || fail "dpkg -r removed the conffile (only purge may)"
in_root dpkg -P pr-helper
[ ! -e "$root/etc/default/pr-helper" ] || fail "dpkg -P left /etc/default/pr-helper"
if in_root dpkg-query -W -f='${Status}' pr-helper 2>/dev/null | grep -q installed; then
    fail "dpkg still lists pr-helper"
fi
step "ok: package $size bytes, exposure ours $ours vs upstream $upstream"
