//! What the loader prints: per-table reports as an aligned table or JSON,
//! and the status of a database.

use council_app::catalog::EXTENSION_QUERY;
use council_app::QuotedIdentifier;
use postgres::Client;
use serde_json::{json, Value};

use crate::import::{Report, TableCounts};

/// An aligned table with a header, as psql prints one.
pub fn table<R: Report>(rows: &[TableCounts<R>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            [r.table.clone(), r.source_rows.to_string()]
                .into_iter()
                .chain(r.outcomes.iter().map(ToString::to_string))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..R::COLUMNS.len())
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain(Some(R::COLUMNS[i].len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |values: Vec<String>, out: &mut String| {
        let mut fields = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let width = widths[i];
            fields.push(if i == 0 {
                format!("{value:<width$}")
            } else {
                format!("{value:>width$}")
            });
        }
        out.push_str(fields.join("  ").trim_end());
        out.push('\n');
    };
    line(
        R::COLUMNS.iter().map(|h| (*h).to_owned()).collect(),
        &mut out,
    );
    line(widths.iter().map(|w| "-".repeat(*w)).collect(), &mut out);
    for row in cells {
        line(row, &mut out);
    }
    out
}

/// One object per table, keyed by the report's columns.
pub fn json<R: Report>(rows: &[TableCounts<R>]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let values = [json!(r.table), json!(r.source_rows)]
                    .into_iter()
                    .chain(r.outcomes.iter().map(|n| json!(n)));
                Value::Object(
                    R::COLUMNS
                        .iter()
                        .zip(values)
                        .map(|(h, v)| ((*h).to_owned(), v))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// A database's llm_council state.
pub struct Status {
    pub server_version: String,
    /// the TLS version of this connection, or None when it is not encrypted
    pub tls: Option<String>,
    pub extension_version: Option<String>,
    pub tables: Vec<(String, i64)>,
    pub rejects: i64,
    /// council_cache_stats() as column → value
    pub cache: Vec<(String, Value)>,
    /// council_overview() (0.2.0 and later)
    pub overview: Option<Value>,
    /// the last imports, syncs and exports, newest first; None when the
    /// role may not read council_imports (or the version has none)
    pub imports: Option<Vec<Value>>,
}

pub fn status(client: &mut Client) -> Result<Status, postgres::Error> {
    let tls: Option<String> = client
        .query_opt(
            "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl",
            &[],
        )?
        .map(|row| row.get(0));
    let server_version: String = client
        .query_one("SELECT current_setting('server_version')", &[])?
        .get(0);
    let extension: Option<(String, String)> = client
        .query_opt(EXTENSION_QUERY, &[])?
        .map(|r| (r.get(0), r.get(1)));
    let Some((schema, version)) = extension else {
        return Ok(Status {
            server_version,
            tls,
            extension_version: None,
            tables: Vec::new(),
            rejects: 0,
            cache: Vec::new(),
            overview: None,
            imports: None,
        });
    };
    let schema = QuotedIdentifier::new(&schema);
    let tables = council_app::tables::COUNCIL
        .iter()
        .chain(["response_cache"].iter())
        .map(|table| Ok(((*table).to_owned(), count(client, &schema, table)?)))
        .collect::<Result<_, postgres::Error>>()?;
    let has_overview = client
        .query_one(
            "SELECT to_regprocedure($1) IS NOT NULL",
            &[&format!("{schema}.council_overview()")],
        )?
        .get::<_, bool>(0);
    let (overview, imports) = if has_overview {
        (
            Some(overview(client, &schema)?),
            recent_imports(client, &schema)?,
        )
    } else {
        (None, None)
    };
    Ok(Status {
        server_version,
        tls,
        extension_version: Some(version),
        tables,
        rejects: count(client, &schema, "council_import_rejects")?,
        cache: cache_stats(client, &schema)?,
        overview,
        imports,
    })
}

/// council_overview(), as a JSON object (0.2.0 and later).
fn overview(client: &mut Client, schema: &QuotedIdentifier) -> Result<Value, postgres::Error> {
    let text: String = client
        .query_one(
            &format!("SELECT to_jsonb(o)::text FROM {schema}.council_overview() o"),
            &[],
        )?
        .get(0);
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// How many of the last imports, syncs and exports status shows.
const RECENT_IMPORTS: i64 = 5;

/// The last few rows of council_imports, newest first; None for a role that
/// may not read it.
fn recent_imports(
    client: &mut Client,
    schema: &QuotedIdentifier,
) -> Result<Option<Vec<Value>>, postgres::Error> {
    let readable: bool = client
        .query_one(
            "SELECT has_table_privilege($1, 'SELECT')",
            &[&format!("{schema}.council_imports")],
        )?
        .get(0);
    if !readable {
        return Ok(None);
    }
    let rows = client.query(
        &format!(
            "SELECT (to_jsonb(i) - 'transaction')::text FROM {schema}.council_imports i
             WHERE i.mode <> 'baseline' ORDER BY i.id DESC LIMIT $1"
        ),
        &[&RECENT_IMPORTS],
    )?;
    Ok(Some(
        rows.iter()
            .map(|row| serde_json::from_str(row.get::<_, &str>(0)).unwrap_or(Value::Null))
            .collect(),
    ))
}

fn count(
    client: &mut Client,
    schema: &QuotedIdentifier,
    table: &str,
) -> Result<i64, postgres::Error> {
    Ok(client
        .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])?
        .get(0))
}

/// council_cache_stats() as column → value.
fn cache_stats(
    client: &mut Client,
    schema: &QuotedIdentifier,
) -> Result<Vec<(String, Value)>, postgres::Error> {
    let row = client.query_one(
        &format!(
            "SELECT entries, expired_entries, total_hit_count, hits, misses, evictions, expirations, hit_rate
             FROM {schema}.council_cache_stats()"
        ),
        &[],
    )?;
    let mut cache = Vec::new();
    for (i, name) in [
        "entries",
        "expired_entries",
        "total_hit_count",
        "hits",
        "misses",
        "evictions",
        "expirations",
    ]
    .iter()
    .enumerate()
    {
        cache.push(((*name).to_owned(), json!(row.get::<_, Option<i64>>(i))));
    }
    cache.push(("hit_rate".into(), json!(row.get::<_, Option<f64>>(7))));
    Ok(cache)
}

impl Status {
    pub fn to_json(&self) -> Value {
        json!({
            "server_version": self.server_version,
            "tls": self.tls,
            "extension_version": self.extension_version,
            "rows": self.tables.iter().map(|(t, n)| (t.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "import_rejects": self.rejects,
            "cache": self.cache.iter().cloned().collect::<serde_json::Map<_, _>>(),
            "overview": self.overview,
            "imports": self.imports,
        })
    }

    pub fn to_text(&self, target: &str) -> String {
        let mut out = format!(
            "database        {target}\nserver          PostgreSQL {}\n",
            self.server_version
        );
        let Some(version) = &self.extension_version else {
            out.push_str("llm_council     not installed (council-loader install)\n");
            return out;
        };
        out.push_str(&format!("llm_council     {version}\n\nrows\n"));
        for (table, n) in &self.tables {
            out.push_str(&format!("  {table:<24} {n:>10}\n"));
        }
        out.push_str(&format!(
            "  {:<24} {:>10}\n\ncache\n",
            "import rejects", self.rejects
        ));
        for (name, value) in &self.cache {
            out.push_str(&format!("  {name:<24} {:>10}\n", shown(value)));
        }
        if let Some(overview) = &self.overview {
            out.push_str(&overview_text(overview));
        }
        if let Some(imports) = &self.imports {
            out.push_str(&imports_text(imports));
        }
        out
    }
}

/// A JSON value as status prints it: "-" for NULL, strings unquoted.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Bytes in the largest unit that keeps a whole number part, as
/// pg_size_pretty prints them.
fn size(value: &Value) -> String {
    let Some(bytes) = value.as_i64() else {
        return "-".to_owned();
    };
    let mut amount = bytes as f64;
    for unit in ["bytes", "kB", "MB", "GB"] {
        if amount < 10240.0 {
            return if unit == "bytes" {
                format!("{bytes} bytes")
            } else {
                format!("{amount:.0} {unit}")
            };
        }
        amount /= 1024.0;
    }
    format!("{amount:.0} TB")
}

fn overview_text(overview: &Value) -> String {
    let mut out = String::from("\nsizes                          table      indexes\n");
    for table in overview["tables"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {:<24} {:>10} {:>12}\n",
            shown(&table["table"]),
            size(&table["table_bytes"]),
            size(&table["index_bytes"])
        ));
    }
    out.push_str(&format!(
        "  {:<24} {:>10} {:>12}\n",
        "all",
        size(&overview["total_bytes"]),
        size(&overview["index_bytes"])
    ));
    out.push_str(&format!(
        "\nsearch\n  {:<24} {:>10}\n  {:<24} {:>10}\n  {:<24} {:>10}\n  {:<24} {:>10}\n  {:<24} {:>10}\n",
        "configuration",
        shown(&overview["search_config"]),
        "documents",
        shown(&overview["search_documents"]),
        "stale (reindex)",
        shown(&overview["search_documents_stale"]),
        "table",
        size(&overview["search_table_bytes"]),
        "indexes",
        size(&overview["search_index_bytes"])
    ));
    out.push_str(&format!(
        "\nlibrary preloaded  {}\n",
        if overview["library_preloaded"] == Value::Bool(true) {
            "yes"
        } else {
            "no (the cache's hit counters and expiry worker need shared_preload_libraries)"
        }
    ));
    out
}

fn imports_text(imports: &[Value]) -> String {
    if imports.is_empty() {
        return "\nimports  none yet\n".to_owned();
    }
    let mut out = String::from("\nlast imports, syncs and exports\n");
    for import in imports {
        let moved: i64 = import["rows"]
            .as_object()
            .into_iter()
            .flat_map(|tables| tables.values())
            .map(|counts| {
                ["imported", "updated", "deleted", "exported"]
                    .iter()
                    .filter_map(|k| counts[*k].as_i64())
                    .sum::<i64>()
            })
            .sum();
        let sha = shown(&import["sha256"]);
        out.push_str(&format!(
            "  {}  {:<10} {:<12} {} rows  {}  sha256 {}  by {}\n",
            shown(&import["finished_at"]),
            shown(&import["mode"]),
            shown(&import["duration"]),
            moved,
            shown(&import["source"]),
            sha.get(..16).unwrap_or(&sha),
            shown(&import["role"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Import;

    #[test]
    fn tables_align_like_psql() {
        let counts = |table: &str, source_rows, outcomes| {
            TableCounts::<Import>::new(table.to_owned(), source_rows, outcomes)
        };
        let rows = vec![
            counts("conversations", 200, vec![200, 0, 0, 0, 0]),
            counts("api_keys", 6, vec![5, 0, 1, 0, 0]),
        ];
        let text = table(&rows);
        assert_eq!(
            text,
            "table_name     source_rows  imported  skipped  rejected  updated  deleted\n\
             -------------  -----------  --------  -------  --------  -------  -------\n\
             conversations          200       200        0         0        0        0\n\
             api_keys                 6         5        0         1        0        0\n"
        );
        let value = json(&rows);
        assert_eq!(value[1]["rejected"], 1);
    }
}
