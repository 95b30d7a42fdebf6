# Sourced by the scripts beside it: the PostgreSQL majors llm_council
# supports, and `--pg N` (repeatable) to choose among them.
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
