#!/usr/bin/env bash
# Runs the whole test suite on every supported PostgreSQL major (15 to 18),
# or on those named with --pg N: lints, the loader's and the shared crates'
# unit tests, then for each major the extension's unit and in-database tests
# (cargo pgrx test), a smoke run of the benchmark (15), the integration
# tests (tests/, loader/tests/) against real clusters of that major with
# the extension installed, and the Debian packages (15: tests/package.sh).
#
#   scripts/test.sh             every major
#   scripts/test.sh --pg 16     PostgreSQL 16 alone (repeat --pg for more)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
parse_majors "$@"
./scripts/setup.sh "${majors[@]/#/--pg=}"

started=$SECONDS
echo "== lints (every unsafe block documented, no warnings)"
cargo clippy --locked --workspace --all-targets -- -D warnings
for major in "${majors[@]}"; do
    [ "$major" = 15 ] && continue
    # The code one major compiles, linted for it.
    cargo clippy --locked --lib --no-default-features --features "pg$major" -- -D warnings
done

echo "== unit tests of the loader and the shared crates"
cargo test --locked -p council-loader -p council-app -p council-file --lib --bins

# PostgreSQL refuses to run as root: pgrx's test cluster runs as `postgres`,
# in a directory that user owns.
pgrx_data=
stop_pgrx_cluster() {
    [ -n "$pgrx_data" ] || return 0
    # pgrx makes its cluster in a subdirectory named after the PostgreSQL
    # version and its process id.
    for pid_file in "$pgrx_data"/data/*/postmaster.pid; do
        [ -f "$pid_file" ] || continue
        sudo -u postgres "$("$PG_CONFIG" --bindir)/pg_ctl" stop -D "$(dirname "$pid_file")" -m immediate >/dev/null 2>&1 || true
    done
    rm -rf "$pgrx_data"
    pgrx_data=
}
trap stop_pgrx_cluster EXIT

for major in "${majors[@]}"; do
    major_started=$SECONDS
    export PG_CONFIG
    PG_CONFIG=$(pg_config_of "$major")
    echo "== PostgreSQL $major: $("$PG_CONFIG" --version), from $("$PG_CONFIG" --bindir)"

    echo "== PostgreSQL $major: extension unit and in-database tests"
    pgrx_data=$(mktemp -d /tmp/llm_council-pgrx-XXXXXX)
    chown postgres: "$pgrx_data" 2>/dev/null || true
    cargo pgrx test "pg$major" --runas postgres --pgdata "$pgrx_data/data"
    # The integration tests below install another build of the library; no
    # server may have the old one loaded while it is replaced.
    stop_pgrx_cluster
    # pgrx leaves the build it tested (pgrx's own test functions in its
    # library) beside target/debug/council-loader, which takes a build
    # beside it as the one to install: every loader test that runs
    # `install` would put it over the build installed below, under the
    # tests that install builds of their own.
    rm -rf "target/debug/llm_council-pg$major"

    echo "== PostgreSQL $major: installing the extension"
    cargo pgrx install --pg-config "$PG_CONFIG" --features cluster-tests

    if [ "$major" = 15 ]; then
        echo "== benchmark smoke run (the full one is bench/run)"
        bench/run --smoke
    fi

    echo "== PostgreSQL $major: integration tests against real clusters"
    cargo test --locked --features cluster-tests --test '*' -- --test-threads=2
    cargo test --locked -p council-loader --test '*' -- --test-threads=2
    if [ "$major" = 15 ]; then
        echo "== the Debian packages (last on 15: they replace, then remove, the installed files)"
        tests/package.sh
    fi
    echo "== PostgreSQL $major: passed in $((SECONDS - major_started)) s"
done
echo "== every test passed on PostgreSQL ${majors[*]} in $((SECONDS - started)) s"
