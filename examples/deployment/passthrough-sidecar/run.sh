#!/usr/bin/env bash
# LOCAL DEVELOPMENT ONLY: starts the passthrough sidecar (nginx.conf beside this script) in the
# foreground, unprivileged, with its pid file, temp files and rendered config in a private
# prefix directory. Every request through it is user `dev`; see the warning in nginx.conf.
#
#   ./run.sh            render, check and run until Ctrl-C
#   ./run.sh --check    render and `nginx -t` only
#
# Environment:
#   LISTEN            loopback address to listen on            (default 127.0.0.1:8080)
#   KAGED_UPSTREAM    kaged's bind address                     (default 127.0.0.1:7777)
#   KAGED_NONCE_FILE  file holding the sidecar nonce           (first choice)
#   KAGED_NONCE       the sidecar nonce itself                 (second choice)
#                     otherwise the nonce is taken from `kaged auth nonce`
#   PREFIX            nginx prefix dir to use and keep         (default: a fresh temp dir,
#                                                               removed on exit)
#   NGINX             nginx binary                             (default: nginx on PATH, or
#                                                               /usr/sbin/nginx)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/nginx.conf"
check_only=0
case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

die() { echo "passthrough-sidecar: $*" >&2; exit 1; }

listen="${LISTEN:-127.0.0.1:8080}"
upstream="${KAGED_UPSTREAM:-127.0.0.1:7777}"

# Refuse anything but loopback: this proxy grants operator rights to whoever reaches it.
listen_re='^(127\.[0-9]+\.[0-9]+\.[0-9]+|localhost|\[::1\]):[0-9]{1,5}$'
[[ "$listen" =~ $listen_re ]] ||
    die "LISTEN=$listen is not a loopback address:port; the passthrough sidecar is local-only"
upstream_re='^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}$'
[[ "$upstream" =~ $upstream_re ]] ||
    die "KAGED_UPSTREAM=$upstream is not host:port"

if [[ -n "${KAGED_NONCE_FILE:-}" ]]; then
    [[ -r "$KAGED_NONCE_FILE" ]] || die "cannot read KAGED_NONCE_FILE=$KAGED_NONCE_FILE"
    nonce="$(<"$KAGED_NONCE_FILE")"
elif [[ -n "${KAGED_NONCE:-}" ]]; then
    nonce="$KAGED_NONCE"
elif command -v kaged >/dev/null 2>&1; then
    nonce="$(kaged auth nonce)" || die "\`kaged auth nonce\` failed; is kaged running with auth.mode = \"sidecar\"?"
else
    die "no nonce: set KAGED_NONCE_FILE or KAGED_NONCE, or put kaged on PATH"
fi
nonce="${nonce%$'\n'}"
# The nonce goes into a quoted nginx string; allow only characters that need no escaping.
[[ "$nonce" =~ ^[A-Za-z0-9._~+/=-]{32,512}$ ]] ||
    die "the nonce must be 32-512 characters of [A-Za-z0-9._~+/=-] (got ${#nonce} characters)"

nginx_bin="${NGINX:-}"
if [[ -z "$nginx_bin" ]]; then
    nginx_bin="$(command -v nginx || true)"
    [[ -n "$nginx_bin" ]] || nginx_bin=/usr/sbin/nginx
fi
[[ -x "$nginx_bin" ]] || die "nginx not found (apt-get install -y nginx-light, or set NGINX=)"

if [[ -n "${PREFIX:-}" ]]; then
    prefix="$PREFIX"
    mkdir -p "$prefix"
    keep=1
else
    prefix="$(mktemp -d "${TMPDIR:-/tmp}/kaged-passthrough.XXXXXX")"
    keep=0
fi
prefix="$(cd "$prefix" && pwd)"
# Traversable but not listable: if nginx was started as root its workers run as another user
# and need to reach the temp dirs; the rendered config itself stays 0600.
chmod 0711 "$prefix"
conf="$prefix/nginx.conf"

cleanup() { [[ $keep -eq 1 ]] || rm -rf "$prefix"; }
trap cleanup EXIT

# Render with shell builtins only, so the nonce never appears on a command line (ps).
shopt -u patsub_replacement 2>/dev/null || true
rendered="$(<"$template")"
rendered="${rendered//__LISTEN__/$listen}"
rendered="${rendered//__KAGED_UPSTREAM__/$upstream}"
rendered="${rendered//__KAGED_NONCE__/$nonce}"
for placeholder in __LISTEN__ __KAGED_UPSTREAM__ __KAGED_NONCE__; do
    [[ "$rendered" != *"$placeholder"* ]] || die "placeholder $placeholder left in the rendered config"
done
(umask 077 && printf '%s\n' "$rendered" >"$conf")

echo "passthrough-sidecar: LOCAL DEVELOPMENT ONLY - every request is user 'dev'" >&2
echo "passthrough-sidecar: prefix $prefix, listen http://$listen -> kaged $upstream" >&2
"$nginx_bin" -e stderr -p "$prefix" -c "$conf" -t
if [[ $check_only -eq 1 ]]; then
    exit 0
fi

"$nginx_bin" -e stderr -p "$prefix" -c "$conf" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
wait "$pid" || status=$?
# A signal interrupts the first wait; wait again for nginx to finish shutting down.
if kill -0 "$pid" 2>/dev/null; then wait "$pid" || status=$?; fi
exit "$status"
