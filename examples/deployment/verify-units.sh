#!/usr/bin/env bash
# Verifies kaged's two systemd units (and the sysusers entry) without touching the machine.
#
#   examples/deployment/verify-units.sh
#
# Exit codes: 0 all checks passed; 1 a check failed (its output is printed); 2 systemd-analyze
# is missing (install the `systemd` package).
#
# How: `systemd-analyze verify` insists that ExecStart= points at an executable, and only
# warns (exit 0) on unknown or malformed settings. So each unit is copied into a throw-away
# directory together with a stand-in `kaged` executable, and any output from the verifier
# counts as a failure.
#   - system unit: verified with --root=<tmp>, a copy of this machine's system unit directory
#     and <tmp>/usr/local/bin/kaged. No user, file or unit is created outside <tmp>.
#   - user unit:   verified with --user, HOME=<tmp>/home (so %h/.local/bin/kaged resolves
#     inside <tmp>) and a private XDG_RUNTIME_DIR.
#   - sysusers-kaged.conf: systemd-sysusers --root=<tmp> (when systemd-sysusers exists).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
system_unit="$here/systemd/kaged.service"
user_unit="$here/systemd-user/kaged.service"
sysusers_conf="$here/systemd/sysusers-kaged.conf"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "verify-units: systemd-analyze not found; install it with: apt-get install -y systemd" >&2
    exit 2
fi
echo "verify-units: using $(systemd-analyze --version | head -n1)"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/kaged-verify-units.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
failed=0

stand_in() {
    install -d "$(dirname "$1")"
    printf '#!/bin/sh\n# stand-in for kaged, used only by verify-units.sh\nexit 0\n' >"$1"
    chmod 0755 "$1"
}

# Runs "$@", prints its output, and fails the check if it exits non-zero or prints anything.
check() {
    local name="$1"
    shift
    local out rc=0
    out="$("$@" 2>&1)" || rc=$?
    if [[ $rc -ne 0 || -n "$out" ]]; then
        echo "FAIL $name (exit $rc)"
        [[ -n "$out" ]] && printf '%s\n' "$out" | sed 's/^/    /'
        failed=1
    else
        echo "ok   $name"
    fi
}

# ---- system unit ----------------------------------------------------------------------------
root="$tmp/root"
install -d "$root/etc/systemd/system" "$root/usr/lib/systemd"
unit_src=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -d "$d" ]]; then unit_src="$d"; break; fi
done
if [[ -z "$unit_src" ]]; then
    echo "verify-units: no system unit directory (/usr/lib/systemd/system) to verify against" >&2
    exit 2
fi
cp -a "$unit_src" "$root/usr/lib/systemd/system"
install -m 0644 "$system_unit" "$root/etc/systemd/system/kaged.service"
stand_in "$root/usr/local/bin/kaged"
echo "verify-units: system unit $system_unit (root $root)"
check "systemd-analyze verify (system)" \
    systemd-analyze verify --man=no --generators=no --root="$root" kaged.service

# ---- user unit ------------------------------------------------------------------------------
home="$tmp/home"
xdg="$tmp/xdg-runtime"
install -d -m 0700 "$home" "$xdg" "$tmp/user"
install -m 0644 "$user_unit" "$tmp/user/kaged.service"
stand_in "$home/.local/bin/kaged"
echo "verify-units: user unit $user_unit (HOME=$home)"
check "systemd-analyze --user verify (user)" \
    env HOME="$home" XDG_RUNTIME_DIR="$xdg" XDG_CONFIG_HOME="$home/.config" \
    systemd-analyze --user verify --man=no --generators=no "$tmp/user/kaged.service"

# ---- sysusers entry -------------------------------------------------------------------------
if command -v systemd-sysusers >/dev/null 2>&1; then
    install -d "$root/etc"
    : >"$root/etc/passwd"
    : >"$root/etc/group"
    echo "verify-units: sysusers entry $sysusers_conf (root $root)"
    out="$(systemd-sysusers --root="$root" "$sysusers_conf" 2>&1)" && rc=0 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q '^kaged:x:[0-9]*:[0-9]*:kaged agent supervisor:/var/lib/kaged:/usr/sbin/nologin$' "$root/etc/passwd"; then
        echo "ok   systemd-sysusers (kaged: $(grep '^kaged:' "$root/etc/passwd"))"
    else
        echo "FAIL systemd-sysusers (exit $rc)"
        printf '%s\n' "$out" | sed 's/^/    /'
        failed=1
    fi
else
    echo "skip systemd-sysusers (not installed)"
fi

if [[ $failed -ne 0 ]]; then
    echo "verify-units: FAILED"
    exit 1
fi
echo "verify-units: all checks passed"
