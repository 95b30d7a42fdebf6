#!/usr/bin/env bash
# Installs what building and testing llm_council needs on Debian 12, and only
# what is missing: clang for bindgen, OpenSSL's headers for council-loader's
# TLS, lintian and fakeroot for the packages, sqlite3 for the tests, each
# PostgreSQL major with its server headers (scripts/postgres.sh says where
# each comes from), cargo-pgrx in the version Cargo.toml pins, and pgrx's
# record of every major here.
#
#   scripts/setup.sh            every supported major (15 to 18)
#   scripts/setup.sh --pg 16    PostgreSQL 16 alone (repeat --pg for more)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
parse_majors "$@"

apt_install libclang-dev clang sudo pkg-config libssl-dev curl lintian fakeroot sqlite3 python3-psycopg2

for major in "${majors[@]}"; do
    ./scripts/postgres.sh "$major" >/dev/null
done

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is not on the PATH; install Rust (rustup) first" >&2
    exit 1
fi

# The test suite lints with clippy; rustup's minimal profile leaves it out.
if ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add clippy
fi

pgrx_version=$(sed -n 's/^pgrx = "=\([0-9.]*\)"/\1/p' Cargo.toml)
if ! cargo pgrx --version 2>/dev/null | grep -qF " $pgrx_version"; then
    echo "setup: installing cargo-pgrx $pgrx_version"
    cargo install cargo-pgrx --version "$pgrx_version" --locked
fi

# pgrx's config names every major it builds for; `init` rewrites it whole, so
# it names every major installed here, not only those asked for now.
config=${PGRX_HOME:-$HOME/.pgrx}/config.toml
init=()
stale=false
for major in "${supported_majors[@]}"; do
    pg_config=$(pg_config_of "$major")
    [ -x "$pg_config" ] || continue
    init+=("--pg$major" "$pg_config")
    grep -qsF "pg$major = \"$pg_config\"" "$config" || stale=true
done
if $stale; then
    cargo pgrx init "${init[@]}"
fi
