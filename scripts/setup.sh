#!/usr/bin/env bash
# Installs what building and testing llm_council needs on Debian 12, and only
# what is missing: PostgreSQL 15 with its server headers, clang for bindgen,
# OpenSSL's headers for council-loader's TLS,
# cargo-pgrx in the version Cargo.toml pins, and pgrx's record of PostgreSQL 15.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)

missing=()
for package in postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo pkg-config libssl-dev; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}"
fi

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

if ! grep -qs '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init --pg15 "$PG_CONFIG"
fi
