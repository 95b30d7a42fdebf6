#!/usr/bin/env bash
# The PostgreSQL 15 package as a DBA uses it, on this machine's Debian
# PostgreSQL 15: scripts/package.sh builds it (lintian passes), `dpkg -i`
# installs it with council-loader's package, its files are the bytes `cargo
# pgrx package` built, CREATE EXTENSION and an import work from it alone (no
# build beside the loader), and `dpkg -r` leaves none of its files behind.
# Run as root (dpkg); scripts/test.sh runs it last on 15, after the tests
# that use the extension `cargo pgrx install` put in the same directories.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
check() {
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
        passed=$((passed + 1))
    else
        echo "FAILED: $what"
        failed=$((failed + 1))
    fi
}

./scripts/package.sh --pg 15
version=$(sed -n 's/^version = "\([0-9.]*\)"/\1/p' Cargo.toml | head -n 1)
extension_deb=target/packages/postgresql-15-llm-council_${version}_amd64.deb
loader_deb=target/packages/council-loader_${version}_amd64.deb

laid_out_as_debian() {
    local listing
    listing=$(dpkg-deb -c "$extension_deb" | awk '{print $6}')
    grep -qx './usr/lib/postgresql/15/lib/llm_council.so' <<<"$listing" &&
        grep -qx './usr/share/postgresql/15/extension/llm_council.control' <<<"$listing" &&
        grep -qx "./usr/share/postgresql/15/extension/llm_council--${version}.sql" <<<"$listing" &&
        grep -qx './usr/share/postgresql/15/extension/llm_council--0.1.0--0.2.0.sql' <<<"$listing" &&
        dpkg-deb -f "$extension_deb" Depends | grep -q '^postgresql-15, ' &&
        dpkg-deb -c "$loader_deb" | awk '{print $6}' | grep -qx './usr/bin/council-loader'
}
check "the package is laid out as Debian's extension packages are" laid_out_as_debian

dpkg -r postgresql-15-llm-council council-loader >/dev/null 2>&1 || true
check "dpkg -i installs both packages" dpkg -i "$extension_deb" "$loader_deb"
files=$(dpkg -L postgresql-15-llm-council council-loader | while read -r path; do [ -f "$path" ] && echo "$path"; done)

same_bytes_as_pgrx_package() {
    local built=target/release/llm_council-pg15 path name source
    for path in $(grep -E '^/usr/(lib|share)/postgresql/' <<<"$files"); do
        name=$(basename "$path")
        source=$(find "$built" -name "$name" -type f | head -n 1)
        [ -n "$source" ] && cmp -s "$path" "$source" || { echo "$path differs from $built's" >&2; return 1; }
    done
}
check "the installed files are the bytes cargo pgrx package built" same_bytes_as_pgrx_package

# The loader from its package: nothing beside /usr/bin/council-loader to
# install from, so the server's files are the package's.
home=$(mktemp -d /tmp/llm_council-package-XXXXXX)
chmod 755 "$home"
stop_cluster() { LLM_COUNCIL_HOME=$home/home council-loader server stop >/dev/null 2>&1 || true; rm -rf "$home"; }
trap stop_cluster EXIT
mkdir -m 755 "$home/home"
imports_from_the_package() {
    (
        unset DATABASE_URL PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PG_CONFIG
        export LLM_COUNCIL_HOME=$home/home
        /usr/bin/council-loader sample "$home/council.db" --conversations 5 >/dev/null &&
            /usr/bin/council-loader import "$home/council.db" &&
            /usr/bin/council-loader verify "$home/council.db" &&
            /usr/bin/council-loader status | tee "$home/status" &&
            grep -q "library preloaded  yes" "$home/status"
    )
}
check "CREATE EXTENSION, an import and verify work from the packages" imports_from_the_package
stop_cluster
trap - EXIT

check "dpkg -r removes both packages" dpkg -r postgresql-15-llm-council council-loader
nothing_left() {
    local path left=0
    for path in $files; do
        if [ -e "$path" ]; then
            echo "left behind: $path" >&2
            left=1
        fi
    done
    [ "$left" = 0 ]
}
check "dpkg -r leaves none of the packages' files behind" nothing_left

echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
