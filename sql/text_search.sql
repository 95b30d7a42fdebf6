-- council_english: English as SQLite FTS5's unicode61 tokenizer splits it.
-- Its parser, council_parser, makes a token of every run of letters and
-- digits, so that the words inside code (tls.createSecureContext), paths,
-- host names, URLs and e-mail addresses are found, which the default
-- parser keeps whole. Words are stemmed as the built-in english does, with
-- its stop words; numbers are kept as they are. Headlines come from
-- PostgreSQL's own prsd_headline, reading the same tokens. It is the
-- search's configuration unless llm_council.search_config names another.

CREATE TEXT SEARCH PARSER @extschema@.council_parser (
    START = @extschema@.council_parser_start,
    GETTOKEN = @extschema@.council_parser_gettoken,
    END = @extschema@.council_parser_end,
    LEXTYPES = @extschema@.council_parser_lextype,
    HEADLINE = pg_catalog.prsd_headline
);

CREATE TEXT SEARCH CONFIGURATION @extschema@.council_english (
    PARSER = @extschema@.council_parser
);

ALTER TEXT SEARCH CONFIGURATION @extschema@.council_english
    ADD MAPPING FOR asciiword, word WITH pg_catalog.english_stem;

ALTER TEXT SEARCH CONFIGURATION @extschema@.council_english
    ADD MAPPING FOR numword, uint WITH pg_catalog.simple;
