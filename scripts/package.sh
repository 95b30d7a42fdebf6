#!/usr/bin/env bash
# Builds the Debian packages into target/packages/:
#
#   postgresql-<N>-llm-council_<version>_amd64.deb   for each major N (15 to 18)
#   council-loader_<version>_amd64.deb
#
# laid out as Debian's own PostgreSQL extension packages are: the library in
# /usr/lib/postgresql/<N>/lib, the control file and every install and upgrade
# script in /usr/share/postgresql/<N>/extension. Each package's files are
# the very bytes `cargo pgrx package` built; lintian checks each package.
#
#   scripts/package.sh           every major
#   scripts/package.sh --pg 15   PostgreSQL 15 alone, and the loader
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
parse_majors "$@"
./scripts/setup.sh "${majors[@]/#/--pg=}"

version=$(sed -n 's/^version = "\([0-9.]*\)"/\1/p' Cargo.toml | head -n 1)
out=target/packages
mkdir -p "$out"
maintainer="llm_council developers <llm-council@users.noreply.github.com>"
homepage=$(sed -n 's/^repository = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# What the binary links against, as Debian words it (dpkg-shlibdeps wants a
# debian/control beside it).
shlib_depends() {
    local binary=$1 scratch
    scratch=$(mktemp -d)
    mkdir "$scratch/debian"
    printf 'Source: llm-council\n\nPackage: scratch\nArchitecture: amd64\n' >"$scratch/debian/control"
    (cd "$scratch" && dpkg-shlibdeps -O "$(realpath -m "$OLDPWD/$binary")" 2>/dev/null) |
        sed -n 's/^shlibs:Depends=//p'
    rm -rf "$scratch"
}

# The documentation every Debian package carries: copyright and changelog.
add_docs() {
    local root=$1 package=$2
    install -d -m 755 "$root/usr/share/doc/$package"
    install -m 644 packaging/copyright "$root/usr/share/doc/$package/copyright"
    gzip -9n <packaging/changelog >"$root/usr/share/doc/$package/changelog.gz"
    chmod 644 "$root/usr/share/doc/$package/changelog.gz"
}

# DEBIAN/control and md5sums, then the .deb itself, owned by root, its
# directories as dpkg leaves them on the system (0755).
build_deb() {
    local root=$1 package=$2 depends=$3 description=$4 size
    chmod 755 "$root"
    size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
    install -d -m 755 "$root/DEBIAN"
    {
        echo "Package: $package"
        echo "Source: llm-council"
        echo "Version: $version"
        echo "Architecture: amd64"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $size"
        echo "Depends: $depends"
        echo "Section: database"
        echo "Priority: optional"
        echo "Homepage: $homepage"
        echo "Description: $description"
    } >"$root/DEBIAN/control"
    (cd "$root" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
    chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
    fakeroot dpkg-deb --build -Zxz "$root" "$out/${package}_${version}_amd64.deb" >/dev/null
    echo "$out/${package}_${version}_amd64.deb"
}

for major in "${majors[@]}"; do
    pg_config=$(pg_config_of "$major")
    cargo pgrx package --pg-config "$pg_config"
    # pgrx lays the build out under pg_config's own directories, which are
    # Debian's for 15 and the cache's for the others.
    built=target/release/llm_council-pg$major
    library=$(find "$built" -name llm_council.so -type f)
    control=$(find "$built" -name llm_council.control -type f)
    root=$(mktemp -d)
    install -d -m 755 "$root/usr/lib/postgresql/$major/lib" "$root/usr/share/postgresql/$major/extension"
    install -m 644 "$library" "$root/usr/lib/postgresql/$major/lib/llm_council.so"
    for file in "$control" "$(dirname "$control")"/llm_council--*.sql; do
        install -m 644 "$file" "$root/usr/share/postgresql/$major/extension/"
    done
    package=postgresql-$major-llm-council
    add_docs "$root" "$package"
    build_deb "$root" "$package" "postgresql-$major, $(shlib_depends "$library")" \
"LLM Council's schema, SQLite import and response cache for PostgreSQL $major
 llm_council moves an LLM Council app from SQLite to PostgreSQL and runs it
 there. CREATE EXTENSION llm_council creates the app's schema; council_import
 moves every row of the app's council.db into it in one transaction, and
 council_verify compares them row by row. The app's response cache lives in
 the database with expiry and hit counts, council_search ranks every
 deliberation by full-text search, and council_export writes the database
 back into a council.db the app runs on.
 .
 This package is built for PostgreSQL $major."
    rm -rf "$root"
done

cargo build --release --locked -p council-loader
root=$(mktemp -d)
install -d -m 755 "$root/usr/bin"
install -m 755 target/release/council-loader "$root/usr/bin/council-loader"
add_docs "$root" council-loader
build_deb "$root" council-loader "$(shlib_depends target/release/council-loader)" \
"moves an LLM Council SQLite database into PostgreSQL
 council-loader installs the llm_council extension on a PostgreSQL server
 (the build for the server's major) and imports, verifies, syncs and exports
 an LLM Council app's council.db from any machine that reaches the server,
 uploading the file when the server cannot read it. With no server named,
 it runs a private local cluster of its own."
rm -rf "$root"

lintian --fail-on error "$out"/*_"$version"_amd64.deb
