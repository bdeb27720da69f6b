#!/usr/bin/env bash
# One whole enrollment with curl, openssl and jq only, as the API documents
# it (docs/api.md, "The API with curl"): pairing code, enroll, sign the challenge,
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
TOKEN_FILE=${3:-.oma-dev/admin.token}
NAME=${4:-vma-curl}
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Tokens go to curl in header files (-H @file), never on its command line,
# where other users could read them (ps).
printf 'Authorization: Bearer %s\n' "$(cat "$TOKEN_FILE")" >"$work/admin.hdr"

# call FILE CURL-ARGS...: run curl, leave the answer in FILE, and on an
# error answer show it and stop.
call() {
	local out=$1
	shift
	if ! curl -sS -o "$out" --fail-with-body -H 'Content-Type: application/json' "$@"; then
		echo "curl-enroll.sh: the server refused: $(cat "$out" 2>/dev/null)" >&2
		exit 1
	fi
}
admin() { call "$work/answer" -H @"$work/admin.hdr" "$@"; cat "$work/answer"; }

# 1. The admin makes a pairing code (10 minutes).
pc=$(admin -X POST -d '{"ttl_seconds":600}' "$ADMIN/api/v1/admin/vma/pairing-code")
code=$(jq -r .pairing_code <<<"$pc")
fp=$(jq -r .oma_fingerprint <<<"$pc")
# curl pins "sha256//<base64 of the SPKI hash>"; the OMA prints it in hex.
pin="sha256//$(printf '%s' "${fp#sha256:}" | xxd -r -p | base64 -w0)"
# -k skips the CA check only: curl still refuses any other public key.
vma() { call "$work/answer" -k --pinnedpubkey "$pin" "$@"; cat "$work/answer"; }

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
printf 'Authorization: Bearer %s\n' "$(jq -r .poll_token <<<"$ver")" >"$work/poll.hdr"

# 5. The admin sees it pending and approves it.
if ! admin "$ADMIN/api/v1/admin/vma/pending" | jq -e --arg i "$id" 'any(.enrollments[]; .id == $i)' >/dev/null; then
	echo "curl-enroll.sh: enrollment $id is not pending" >&2
	exit 1
fi
admin -X POST -d '{"notes":"approved with curl"}' "$ADMIN/api/v1/admin/vma/approve/$id" >/dev/null

# 6. The VMA's result (a long poll would wait with &wait=25s).
vma -H @"$work/poll.hdr" "$PUBLIC/api/v1/vma/enroll/result?enrollment_id=$id"
echo
