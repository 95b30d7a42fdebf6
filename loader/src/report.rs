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
        });
    };
    let schema = QuotedIdentifier::new(&schema);
    let tables = council_app::tables::COUNCIL
        .iter()
        .chain(["response_cache"].iter())
        .map(|table| Ok(((*table).to_owned(), count(client, &schema, table)?)))
        .collect::<Result<_, postgres::Error>>()?;
    Ok(Status {
        server_version,
        tls,
        extension_version: Some(version),
        tables,
        rejects: count(client, &schema, "council_import_rejects")?,
        cache: cache_stats(client, &schema)?,
    })
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
            let shown = if value.is_null() {
                "-".to_owned()
            } else {
                value.to_string()
            };
            out.push_str(&format!("  {name:<24} {shown:>10}\n"));
        }
        out
    }
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
