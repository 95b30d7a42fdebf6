//! A council.db's layout as SQLite itself reports it: every table's
//! columns (`pragma table_info`), foreign keys (`foreign_key_list`) and
//! indexes (`index_list`, `index_xinfo`), one line per fact, so that two
//! files compare as lists and a difference reads as the line that differs.

use rusqlite::{Connection, Params, Row};

/// The layout of every table in `conn`'s main database, tables by name,
/// each table's columns in their order, its keys and indexes by name.
pub fn describe(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let tables: Vec<String> = query(
        conn,
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        [],
    )?;
    let mut lines = Vec::new();
    for table in &tables {
        lines.extend(query(
            conn,
            "SELECT ?1 || ' column ' || cid || ': ' || name || ' ' || type \
             || iif(\"notnull\", ' NOT NULL', '') || ' DEFAULT ' || coalesce(dflt_value, 'none') \
             || ' pk ' || pk FROM pragma_table_info(?1) ORDER BY cid",
            [table],
        )?);
        lines.extend(query(
            conn,
            "SELECT ?1 || ' foreign key ' || \"from\" || ' -> ' || \"table\" || '(' || \"to\" || ')' \
             || ' on update ' || on_update || ' on delete ' || on_delete || ' match ' || \"match\" \
             FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
            [table],
        )?);
        let indexes: Vec<String> = query(
            conn,
            "SELECT name FROM pragma_index_list(?1) ORDER BY name",
            [table],
        )?;
        for index in &indexes {
            lines.extend(query(
                conn,
                "SELECT ?1 || ' index ' || name || iif(\"unique\", ' UNIQUE', '') \
                 || ' origin ' || origin || iif(partial, ' partial', '') \
                 FROM pragma_index_list(?1) WHERE name = ?2",
                [table, index],
            )?);
            lines.extend(query(
                conn,
                "SELECT ?1 || ' key ' || seqno || ': ' || coalesce(name, 'rowid') \
                 || iif(\"desc\", ' DESC', ' ASC') || ' COLLATE ' || coll \
                 FROM pragma_index_xinfo(?1) WHERE key ORDER BY seqno",
                [index],
            )?);
        }
    }
    Ok(lines)
}

/// `sqlite_schema` in creation order: each object's type, name, table and
/// the text of its CREATE statement (None for automatic indexes). The
/// app's start-up adds an object exactly when this list grows.
pub type SchemaRow = (String, String, String, Option<String>);

pub fn schema(conn: &Connection) -> rusqlite::Result<Vec<SchemaRow>> {
    let mut statement =
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    rows.collect()
}

fn query(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map(params, |row: &Row<'_>| row.get::<_, String>(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(ddl: &str) -> Vec<String> {
        let conn = Connection::open_in_memory().expect("memory");
        conn.execute_batch(ddl).expect("ddl");
        describe(&conn).expect("layout")
    }

    #[test]
    fn every_fact_of_a_table_is_a_line() {
        let lines = layout(
            "CREATE TABLE p (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE DEFAULT 'x');
             CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id) ON DELETE CASCADE);
             CREATE INDEX c_p ON c(p_id DESC);",
        );
        assert_eq!(
            lines,
            [
                "c column 0: id INTEGER DEFAULT none pk 1",
                "c column 1: p_id INTEGER DEFAULT none pk 0",
                "c foreign key p_id -> p(id) on update NO ACTION on delete CASCADE match NONE",
                "c index c_p origin c",
                "c_p key 0: p_id DESC COLLATE BINARY",
                "p column 0: id INTEGER DEFAULT none pk 1",
                "p column 1: k TEXT NOT NULL DEFAULT 'x' pk 0",
                "p index sqlite_autoindex_p_1 UNIQUE origin u",
                "sqlite_autoindex_p_1 key 0: k ASC COLLATE BINARY",
            ]
        );
    }

    #[test]
    fn column_order_index_names_and_direction_tell_layouts_apart() {
        let base = layout("CREATE TABLE t (a, b); CREATE INDEX t_a ON t(a);");
        assert_ne!(
            base,
            layout("CREATE TABLE t (b, a); CREATE INDEX t_a ON t(a);")
        );
        assert_ne!(
            base,
            layout("CREATE TABLE t (a, b); CREATE INDEX t_a2 ON t(a);")
        );
        assert_ne!(
            base,
            layout("CREATE TABLE t (a, b); CREATE INDEX t_a ON t(a DESC);")
        );
        assert_ne!(base, layout("CREATE TABLE t (a, b);"));
        assert_eq!(
            base,
            layout("CREATE TABLE t (a, b); CREATE INDEX t_a ON t(a);")
        );
    }
}
