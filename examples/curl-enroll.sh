#!/usr/bin/env bash
# One whole enrollment with curl, openssl and jq only, as the API documents
# it (README "The API with curl"): pairing code, enroll, sign the challenge,
# verify, approve, and the VMA's result with its tunnel settings.
#
#   examples/curl-enroll.sh [ADMIN_URL [PUBLIC_URL [TOKEN_FILE [VMA_NAME]]]]
#
# Defaults match `make run`: http://127.0.0.1:8082, https://127.0.0.1:8443,
# .oma-dev/admin.token, vma-curl. The public listener's certificate is
# pinned by the fingerprint the pairing-code answer carries (curl
# --pinnedpubkey), as vma-enroll pins it. Needs OpenSSL 3 (Ed25519 with
# -rawin).
set -euo pipefail

ADMIN=${1:-http://127.0.0.1:8082}
PUBLIC=${2:-https://127.0.0.1:8443}
TOKEN=$(cat "${3:-.oma-dev/admin.token}")
NAME=${4:-vma-curl}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
json=(-H 'Content-Type: application/json')
admin() { curl -sS --fail-with-body "${json[@]}" -H "Authorization: Bearer $TOKEN" "$@"; }

# 1. The admin makes a pairing code (10 minutes).
pc=$(admin -X POST -d '{"ttl_seconds":600}' "$ADMIN/api/v1/admin/vma/pairing-code")
code=$(jq -r .pairing_code <<<"$pc")
fp=$(jq -r .oma_fingerprint <<<"$pc")
# curl pins "sha256//<base64 of the SPKI hash>"; the OMA prints it in hex.
pin="sha256//$(printf '%s' "${fp#sha256:}" | xxd -r -p | base64 -w0)"
vma() { curl -sS --fail-with-body -k --pinnedpubkey "$pin" "${json[@]}" "$@"; }

# 2. The VMA's Ed25519 key, and its public key in OpenSSH form:
#    "ssh-ed25519 " + base64(string "ssh-ed25519" + string <32-byte key>).
openssl genpkey -algorithm ed25519 -out "$work/vma.pem"
{
	printf '\000\000\000\013ssh-ed25519\000\000\000\040'
	openssl pkey -in "$work/vma.pem" -pubout -outform DER | tail -c 32
} >"$work/pub.bin"
pubkey="ssh-ed25519 $(base64 -w0 <"$work/pub.bin")"

# 3. Enroll with the code: the answer carries the challenge.
en=$(vma -d "$(jq -n --arg c "$code" --arg k "$pubkey" --arg n "$NAME" \
	'{pairing_code:$c, vma_public_key:$k, vma_name:$n}')" "$PUBLIC/api/v1/vma/enroll")
id=$(jq -r .enrollment_id <<<"$en")

# 4. Sign "vma-enrollment-challenge-v1\n" + id + "\n" + the challenge bytes.
{
	printf 'vma-enrollment-challenge-v1\n%s\n' "$id"
	jq -r .challenge <<<"$en" | base64 -d
} >"$work/msg"
sig=$(openssl pkeyutl -sign -rawin -inkey "$work/vma.pem" -in "$work/msg" | base64 -w0)
ver=$(vma -d "$(jq -n --arg i "$id" --arg s "$sig" '{enrollment_id:$i, signature:$s}')" \
	"$PUBLIC/api/v1/vma/enroll/verify")
poll=$(jq -r .poll_token <<<"$ver")

# 5. The admin sees it pending and approves it.
admin "$ADMIN/api/v1/admin/vma/pending" | jq -e --arg i "$id" 'any(.enrollments[]; .id == $i)' >/dev/null
admin -X POST -d '{"notes":"approved with curl"}' "$ADMIN/api/v1/admin/vma/approve/$id" >/dev/null

# 6. The VMA's result (a long poll would wait with &wait=25s).
vma -H "Authorization: Bearer $poll" "$PUBLIC/api/v1/vma/enroll/result?enrollment_id=$id"
