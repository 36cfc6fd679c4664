#!/usr/bin/env bash
# Creates ./secrets for compose.yaml: every file mode 0400, owned by the uid of the one
# container that reads it, written without a trailing newline (oauth2-proxy reads secret files
# byte for byte). Run it as root (it chowns), from anywhere:
#
#   sudo ./init-secrets.sh --cloudflared-credentials ~/.cloudflared/<TUNNEL-UUID>.json
#   sudo ./init-secrets.sh --rotate-nonce        # new kaged nonce, then: docker compose restart
#
# The OIDC client secret is read from the terminal (not echoed, not on the command line) or,
# non-interactively, from the file named by --client-secret-file.
#
# Existing files are kept unless a --rotate-* flag asks otherwise.
# Uids: KAGED_UID (default 10001, the Dockerfile's kaged user), PROXY_UID and
# CLOUDFLARED_UID (default 65532, the images' nonroot user). With rootless Docker or user
# namespace remapping, pass the host uids those map to.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$here/secrets"
kaged_uid="${KAGED_UID:-10001}"
proxy_uid="${PROXY_UID:-65532}"
cloudflared_uid="${CLOUDFLARED_UID:-65532}"

rotate_nonce=0
rotate_cookie=0
creds=""
client_secret_file=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rotate-nonce) rotate_nonce=1 ;;
        --rotate-cookie-secret) rotate_cookie=1 ;;
        --cloudflared-credentials) creds="${2:?--cloudflared-credentials needs a path}"; shift ;;
        --client-secret-file) client_secret_file="${2:?--client-secret-file needs a path}"; shift ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "init-secrets: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

[[ $(id -u) -eq 0 ]] || { echo "init-secrets: run as root (files are chowned to container uids)" >&2; exit 1; }

umask 077
# Traversable (docker compose, run by a non-root member of the docker group, may stat the
# files) but not listable; each file is readable only by its owner.
install -d -m 0711 "$dir"
chmod 0711 "$dir"

# 256 random bits as 64 hex characters, using only coreutils.
random_hex() { od -An -vtx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# put NAME UID: writes stdin to secrets/NAME atomically, mode 0400, owned by UID.
put() {
    local tmp
    tmp="$(mktemp "$dir/.$1.XXXXXX")"
    cat >"$tmp"
    chown "$2:$2" "$tmp"
    chmod 0400 "$tmp"
    mv -f "$tmp" "$dir/$1"
    echo "init-secrets: wrote secrets/$1 (owner $2, mode 0400)"
}

# The sidecar nonce: the same value twice, one copy per reader.
if [[ $rotate_nonce -eq 1 || ! -f "$dir/kaged_sidecar_nonce" || ! -f "$dir/oauth2_proxy_kaged_nonce" ]]; then
    nonce="$(random_hex 32)"
    printf '%s' "$nonce" | put kaged_sidecar_nonce "$kaged_uid"
    printf '%s' "$nonce" | put oauth2_proxy_kaged_nonce "$proxy_uid"
    unset nonce
fi

# oauth2-proxy's cookie secret: 32 characters = an AES-256 key.
if [[ $rotate_cookie -eq 1 || ! -f "$dir/oauth2_proxy_cookie_secret" ]]; then
    printf '%s' "$(random_hex 16)" | put oauth2_proxy_cookie_secret "$proxy_uid"
fi

if [[ -n "$client_secret_file" ]]; then
    secret="$(<"$client_secret_file")"
    printf '%s' "${secret%$'\n'}" | put oauth2_proxy_client_secret "$proxy_uid"
    unset secret
elif [[ ! -f "$dir/oauth2_proxy_client_secret" ]]; then
    [[ -t 0 ]] || { echo "init-secrets: no terminal; pass --client-secret-file" >&2; exit 1; }
    read -r -s -p "OIDC client secret (from your identity provider): " secret
    echo
    [[ -n "$secret" ]] || { echo "init-secrets: empty client secret" >&2; exit 1; }
    printf '%s' "$secret" | put oauth2_proxy_client_secret "$proxy_uid"
    unset secret
fi

if [[ -n "$creds" ]]; then
    put cloudflared_credentials.json "$cloudflared_uid" <"$creds"
elif [[ ! -f "$dir/cloudflared_credentials.json" ]]; then
    echo "init-secrets: secrets/cloudflared_credentials.json is missing; rerun with" >&2
    echo "              --cloudflared-credentials ~/.cloudflared/<TUNNEL-UUID>.json" >&2
    exit 1
fi

echo "init-secrets: done. Nothing here belongs in git (see .gitignore)."
