#!/usr/bin/env bash
# Creates the site's secrets for docker compose, once (never overwrites existing ones):
#   ./secrets/postgres_password, ./secrets/grafana_admin_password (0600)
#   .env with POSTGRES_PASSWORD, DASAN_CONSOLE_SESSION_SECRET, DASAN_CALLER_KEY_SECRET, KAFKA_CLUSTER_ID
# Both ./secrets and .env are git-ignored (infra/compose/.gitignore).
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
    echo "KAFKA_CLUSTER_ID=${cluster_id}"
  } > .env
fi
echo "secrets ready in $(pwd)/secrets and $(pwd)/.env (keep them out of git and backups you share)"
