#!/usr/bin/env bash
# Runs the whole test suite: the loader's unit tests, the extension's unit and
# in-database tests (cargo pgrx test), a smoke run of the benchmark, and the
# integration tests (tests/, loader/tests/) against real PostgreSQL clusters
# with the extension installed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}

echo "== lints (every unsafe block documented, no warnings)"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== unit tests of the loader and the shared crates"
cargo test --locked -p council-loader -p council-app -p council-file --lib --bins

echo "== extension unit and in-database tests"
# PostgreSQL refuses to run as root: the test cluster runs as `postgres`, in a
# directory that user owns.
pgrx_data=$(mktemp -d /tmp/llm_council-pgrx-XXXXXX)
stop_pgrx_cluster() {
    # pgrx makes its cluster in a subdirectory named after the PostgreSQL
    # version and its process id.
    for pid_file in "$pgrx_data"/data/*/postmaster.pid; do
        [ -f "$pid_file" ] || continue
        sudo -u postgres "$("$PG_CONFIG" --bindir)/pg_ctl" stop -D "$(dirname "$pid_file")" -m immediate >/dev/null 2>&1 || true
    done
    rm -rf "$pgrx_data"
}
trap stop_pgrx_cluster EXIT
chown postgres: "$pgrx_data" 2>/dev/null || true
cargo pgrx test pg15 --runas postgres --pgdata "$pgrx_data/data"
# The integration tests below install another build of the library; no
# server may have the old one loaded while it is replaced.
stop_pgrx_cluster

echo "== installing the extension"
cargo pgrx install --pg-config "$PG_CONFIG" --features cluster-tests

echo "== benchmark smoke run (the full one is bench/run)"
bench/run --smoke

echo "== integration tests against real clusters"
cargo test --locked --features cluster-tests --test '*' -- --test-threads=2
cargo test --locked -p council-loader --test '*' -- --test-threads=2
