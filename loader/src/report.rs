//! What the loader prints: per-table reports as an aligned table or JSON,
//! and the status of a database.

use postgres::Client;
use serde_json::{json, Value};

use crate::import::Row;

/// An aligned table with a header, as psql prints one.
pub fn table(headers: &[&str], rows: &[Row]) -> String {
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.0.clone(),
                r.1.to_string(),
                r.2.to_string(),
                r.3.to_string(),
                r.4.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain(headers.get(i).map(|h| h.len()))
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
    line(headers.iter().map(|h| (*h).to_owned()).collect(), &mut out);
    line(widths.iter().map(|w| "-".repeat(*w)).collect(), &mut out);
    for row in cells {
        line(row.to_vec(), &mut out);
    }
    out
}

pub fn json(headers: &[&str], rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let values = [json!(r.0), json!(r.1), json!(r.2), json!(r.3), json!(r.4)];
                Value::Object(
                    headers
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
        .query_opt(
            "SELECT e.extversion, n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
             WHERE e.extname = 'llm_council'",
            &[],
        )?
        .map(|r| (r.get(0), r.get(1)));
    let Some((version, schema)) = extension else {
        return Ok(Status {
            server_version,
            tls,
            extension_version: None,
            tables: Vec::new(),
            rejects: 0,
            cache: Vec::new(),
        });
    };
    let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
    let mut tables = Vec::new();
    for table in council_app::tables::COUNCIL
        .iter()
        .chain(["response_cache"].iter())
    {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {quoted}.{table}"), &[])?
            .get(0);
        tables.push(((*table).to_owned(), n));
    }
    let rejects: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {quoted}.council_import_rejects"),
            &[],
        )?
        .get(0);
    let row = client.query_one(
        &format!(
            "SELECT entries, expired_entries, total_hit_count, hits, misses, evictions, expirations, hit_rate
             FROM {quoted}.council_cache_stats()"
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
    Ok(Status {
        server_version,
        tls,
        extension_version: Some(version),
        tables,
        rejects,
        cache,
    })
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

    #[test]
    fn tables_align_like_psql() {
        let rows = vec![
            ("conversations".to_owned(), 200, 200, 0, 0),
            ("api_keys".to_owned(), 6, 5, 0, 1),
        ];
        let text = table(
            &[
                "table_name",
                "source_rows",
                "imported",
                "skipped",
                "rejected",
            ],
            &rows,
        );
        assert_eq!(
            text,
            "table_name     source_rows  imported  skipped  rejected\n\
             -------------  -----------  --------  -------  --------\n\
             conversations          200       200        0         0\n\
             api_keys                 6         5        0         1\n"
        );
        let value = json(
            &[
                "table_name",
                "source_rows",
                "imported",
                "skipped",
                "rejected",
            ],
            &rows,
        );
        assert_eq!(value[1]["rejected"], 1);
    }
}
