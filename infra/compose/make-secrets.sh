#!/usr/bin/env bash
# Creates the site's secrets for docker compose, once (never overwrites existing ones):
#   ./secrets/postgres_password, ./secrets/grafana_admin_password (0600)
#   .env with POSTGRES_PASSWORD, DASAN_CONSOLE_SESSION_SECRET, DASAN_CALLER_KEY_SECRET,
#   DASAN_ASR_INGEST_SECRET, KAFKA_CLUSTER_ID
#   ./secrets/kafka/: the site's Kafka CA, a key+certificate per broker (kafka-N.pem, for both
#   listeners, server and client), one for the ACL job (kafka-admin.pem, a super user) and one per
#   Dasan principal (dasan-<service>.crt/.key; the CN is the Kafka user of infra/kafka_acls.py).
# Both ./secrets and .env are git-ignored (infra/compose/.gitignore). Keep ./secrets/kafka/ca.key
# off the machines that run the services once the certificates are made.
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
rand() { openssl rand -hex "$1"; }
[ -s secrets/postgres_password ] || rand 24 > secrets/postgres_password
[ -s secrets/grafana_admin_password ] || rand 16 > secrets/grafana_admin_password
if [ ! -s .env ]; then
  # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding (22 characters).
  cluster_id=$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=\n')
  {
    echo "POSTGRES_PASSWORD=$(cat secrets/postgres_password)"
    echo "DASAN_CONSOLE_SESSION_SECRET=$(rand 32)"
    echo "DASAN_CALLER_KEY_SECRET=$(rand 32)"
    echo "DASAN_ASR_INGEST_SECRET=$(rand 32)"
    echo "KAFKA_CLUSTER_ID=${cluster_id}"
  } > .env
fi
# An .env made before start tokens existed gets the ingest secret added (nothing else changes).
grep -q '^DASAN_ASR_INGEST_SECRET=' .env || echo "DASAN_ASR_INGEST_SECRET=$(rand 32)" >> .env

# Kafka mutual TLS: a site CA, then one certificate per identity (2 years; re-run after deleting one).
K=secrets/kafka
mkdir -p "$K"
if [ ! -s "$K/ca.pem" ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj "/CN=dasan-kafka-ca" \
    -keyout "$K/ca.key" -out "$K/ca.pem" 2>/dev/null
fi
issue() {  # issue NAME EXTENDED_KEY_USAGE [SUBJECT_ALT_NAME]
  local name=$1 eku=$2 san=${3:-}
  [ -s "$K/$name.crt" ] && return 0
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$K/$name.key" -out "$K/$name.csr" 2>/dev/null
  { echo "extendedKeyUsage=$eku"; [ -n "$san" ] && echo "subjectAltName=$san"; } > "$K/$name.ext"
  openssl x509 -req -in "$K/$name.csr" -CA "$K/ca.pem" -CAkey "$K/ca.key" -CAcreateserial -days 730 \
    -extfile "$K/$name.ext" -out "$K/$name.crt" 2>/dev/null
  rm -f "$K/$name.csr" "$K/$name.ext"
}
for n in 1 2 3; do
  issue "kafka-$n" serverAuth,clientAuth "DNS:kafka-$n"
  cat "$K/kafka-$n.key" "$K/kafka-$n.crt" "$K/ca.pem" > "$K/kafka-$n.pem"  # a PEM keystore
done
issue kafka-admin clientAuth
cat "$K/kafka-admin.key" "$K/kafka-admin.crt" "$K/ca.pem" > "$K/kafka-admin.pem"
for principal in dasan-gateway dasan-asr-worker dasan-assist dasan-assist-summaries dasan-console dasan-topics; do
  issue "$principal" clientAuth
done
# The ASR gateway serves wss:// with a server certificate of the same site CA (the PBX adapter,
# Prometheus and the health check trust ca.pem).
issue asr-gateway serverAuth "DNS:asr-gateway,DNS:localhost,IP:127.0.0.1"
echo "secrets ready in $(pwd)/secrets and $(pwd)/.env (keep them out of git and backups you share)"
