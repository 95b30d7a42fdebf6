#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs the prerequisites,
# builds and installs the extension, starts (or reuses) a private local
# PostgreSQL 15 cluster, creates the extension there and lists what it made.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
bin=$("$PG_CONFIG" --bindir)

echo "== building and installing llm_council (release)"
cargo pgrx install --release --pg-config "$PG_CONFIG"

# PostgreSQL will not run as root: then the cluster belongs to `postgres` and
# lives where that user can reach it.
if [ "$(id -u)" -eq 0 ]; then
    base=${LLM_COUNCIL_HOME:-/var/lib/llm_council}
    as_server=(sudo -u postgres)
else
    base=${LLM_COUNCIL_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/llm_council}
    as_server=()
fi
data=$base/quickstart
port=${LLM_COUNCIL_PORT:-54329}
mkdir -p "$base"
[ "$(id -u)" -ne 0 ] || chown postgres: "$base"

if [ ! -f "$data/PG_VERSION" ]; then
    echo "== creating a local cluster in $data"
    "${as_server[@]}" "$bin/initdb" --pgdata "$data" --username=postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" \
        "$port" "$data" >>"$data/postgresql.conf"
fi
if ! "${as_server[@]}" "$bin/pg_ctl" status --pgdata "$data" >/dev/null 2>&1; then
    echo "== starting it on 127.0.0.1:$port"
    "${as_server[@]}" "$bin/pg_ctl" start --pgdata "$data" --log "$data/server.log" --wait --silent
fi

url="postgresql://postgres@127.0.0.1:$port/postgres"
# A new build replaced the library: connections opened from here load it anew.
psql "$url" -v ON_ERROR_STOP=1 -q \
    -c "CREATE EXTENSION IF NOT EXISTS llm_council" \
    -c "ALTER EXTENSION llm_council UPDATE" \
    -c "SELECT extversion AS llm_council FROM pg_extension WHERE extname = 'llm_council'" \
    -c '\dt'
echo "connect with: psql $url"
