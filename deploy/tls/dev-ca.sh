#!/usr/bin/env bash
# Makes a development CA and certificates for Cairn's TLS, with openssl:
#   deploy/tls/dev-ca.sh [DIR] [NAME ...]
# DIR (default deploy/tls/dev) receives ca.pem/ca.key, server.pem/server.key for the NAMEs
# (default: localhost 127.0.0.1 catalog scheduler, the compose service names) and
# client.pem/client.key (a client certificate for mTLS). Keys are 0600 (CAIRN_TLS_OWNER=uid
# chowns them, e.g. 10001 for the image's user). Not for production.
set -euo pipefail
dir="${1:-$(dirname "$0")/dev}"
shift || true
names=("$@")
((${#names[@]})) || names=(localhost 127.0.0.1 catalog scheduler)
mkdir -p "$dir"
cd "$dir"
umask 077
san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san="${san%,}"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -subj "/CN=cairn-dev-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout ca.key -out ca.pem 2>/dev/null
leaf() { # name usage san
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s' "$2" "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
leaf server serverAuth "subjectAltName=$san"
leaf client clientAuth "subjectAltName=DNS:cairn-client"
rm -f ca.srl
chmod 0644 ca.pem server.pem client.pem
# The image runs as uid 10001: CAIRN_TLS_OWNER=10001 hands it the keys (needs root).
if [[ -n "${CAIRN_TLS_OWNER:-}" ]]; then chown "$CAIRN_TLS_OWNER" server.key client.key; fi
echo "wrote $(pwd)/{ca,server,client}.{pem,key} for ${names[*]}"
