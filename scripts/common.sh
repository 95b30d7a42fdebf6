# Sourced by the scripts (and bench/run): the PostgreSQL majors llm_council
# supports, `--pg N` (repeatable) to choose among them, and Debian packages
# installed only when missing.
supported_majors=(15 16 17 18)

# Sets `majors` from the arguments: every supported major unless `--pg N`
# names some. Anything else is an error.
parse_majors() {
    majors=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --pg) majors+=("${2:?--pg needs a major, one of ${supported_majors[*]}}"); shift 2 ;;
            --pg=*) majors+=("${1#--pg=}"); shift ;;
            *) echo "$(basename "$0"): unknown argument $1 (only --pg N)" >&2; exit 2 ;;
        esac
    done
    [ ${#majors[@]} -gt 0 ] || majors=("${supported_majors[@]}")
    local major
    for major in "${majors[@]}"; do
        case " ${supported_majors[*]} " in
            *" $major "*) ;;
            *) echo "PostgreSQL $major is not supported; the supported majors are ${supported_majors[*]}" >&2; exit 2 ;;
        esac
    done
}

# The pg_config of an installed major (scripts/setup.sh installs them).
pg_config_of() {
    if [ "$1" = 15 ]; then
        echo /usr/lib/postgresql/15/bin/pg_config
    else
        echo "${LLM_COUNCIL_PG_CACHE:-/var/cache/llm_council/postgresql}/$1/bin/pg_config"
    fi
}

as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)

# Installs those of the Debian packages named that are missing (progress on
# standard error, so a caller's standard output stays its own).
apt_install() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    echo "setup: installing ${missing[*]}" >&2
    "${as_root[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >&2
}
