#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs the prerequisites,
# builds the extension and council-loader, then lets council-loader start
# (or reuse) its private local PostgreSQL 15 cluster, install the extension
# there, write a sample council.db in the app's format, import it, verify it
# and report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --pg 15
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

echo "== building llm_council and council-loader (release)"
cargo pgrx package --pg-config "$PG_CONFIG"
cargo build --release --locked -p council-loader
loader=target/release/council-loader

# No server named: council-loader uses its own cluster (run as root, it runs
# as the postgres OS user under /var/lib/llm_council).
unset DATABASE_URL PGHOST PGPORT PGDATABASE PGUSER
echo "== installing the extension (files by rename, so a running server is safe)"
"$loader" install --from target/release/llm_council-pg15

sample=target/quickstart/council.db
echo "== a sample council.db: ${LLM_COUNCIL_SAMPLE:-300} conversations"
mkdir -p target/quickstart
rm -f "$sample"
"$loader" sample "$sample" --conversations "${LLM_COUNCIL_SAMPLE:-300}"

echo "== importing it (run again, and every row is skipped as already there)"
"$loader" import "$sample"
echo "== verifying it row by row"
"$loader" verify "$sample"
"$loader" status
echo "connect with: psql '$("$loader" server start)'"
