#!/usr/bin/env bash
# Makes a DKIM key pair with openssl and prints the DNS TXT record to publish for it.
#
# usage: scripts/dkim-keygen.sh DOMAIN SELECTOR [rsa|ed25519] [DIR]
#   rsa (the default) is 2048 bits, which every receiver verifies; ed25519 (RFC 8463) is
#   small and fast, but not every receiver checks it yet: sign with both by running two
#   selectors only if you need to (mailworkerd signs with one key).
#   Writes DIR/SELECTOR.private (PEM, mode 600: DKIM_PRIVATE_KEY_FILE) and DIR/SELECTOR.txt
#   (the record); DIR defaults to the current folder. An existing key is never overwritten.
set -euo pipefail
if [ $# -lt 2 ] || [ $# -gt 4 ]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
domain=$1 selector=$2 type=${3:-rsa} dir=${4:-.}
case "$type" in
    rsa) algorithm=(-algorithm RSA -pkeyopt rsa_keygen_bits:2048) ;;
    ed25519) algorithm=(-algorithm ED25519) ;;
    *) echo "error: key type must be rsa or ed25519, not $type" >&2; exit 2 ;;
esac
key="$dir/$selector.private"
if [ -e "$key" ]; then
    echo "error: $key exists; choose a new selector to rotate keys" >&2
    exit 1
fi
mkdir -p "$dir"
(umask 077 && openssl genpkey "${algorithm[@]}" -out "$key" 2>/dev/null)
if [ "$type" = rsa ]; then
    # p= is the SubjectPublicKeyInfo in DER, base64 (RFC 6376 §3.6.1).
    public=$(openssl pkey -in "$key" -pubout -outform DER | base64 -w0)
else
    # p= is the 32 raw bytes of the key (RFC 8463 §4): the DER form's last 32 bytes.
    public=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | base64 -w0)
fi
record="v=DKIM1; k=$type; p=$public"
# TXT strings are at most 255 characters (RFC 1035 §3.3.14): a 2048-bit key is split in two.
quoted=$(printf '%s' "$record" | fold -w 250 | sed 's/.*/"&"/' | paste -sd ' ')
printf '%s._domainkey.%s. IN TXT ( %s )\n' "$selector" "$domain" "$quoted" | tee "$dir/$selector.txt"
cat >&2 <<NOTE

Private key: $key (keep it readable by the mailworkerd user only).
Set in mailworkerd's environment:
  DKIM_DOMAIN=$domain
  DKIM_SELECTOR=$selector
  DKIM_PRIVATE_KEY_FILE=$(realpath "$key")
Publish the record above, check it with: dig +short TXT $selector._domainkey.$domain
NOTE
