//! The fate of each source row: imported, skipped (already in the database,
//! identical) or rejected with its reason. Pure: the comparison with a row
//! already in the database is a function the caller passes in, so every
//! rule is unit-tested without a server.

use std::collections::HashSet;

use super::catalog::Table;
use super::row::{Key, Problem, Value};
use crate::mapping;
use crate::sqlstate::{self, SqlState};

/// Rows in a table's key set: present in the target before the import, or
/// imported or skipped by it. Hashed with foldhash: several times faster
/// than the standard SipHash on a million keys, and seeded per set, so ids
/// a file chose cannot all fall into one bucket.
pub type KeySet = HashSet<Key, foldhash::fast::RandomState>;

pub enum Decision<'a> {
    Import(Vec<Value<'a>>, Key),
    /// The target has a row of this id: how the two compare decides the
    /// row's fate (see [`Decider::resolve`]), once its batch is compared.
    Compare(Vec<Value<'a>>, Key),
    /// With the row's key when it has one: a rejected parent takes its
    /// children along.
    Reject(Problem, Option<Key>),
}

/// The fate of a row that was compared with the target's row.
pub enum Resolution {
    Skip,
    /// sync: the file's version is written over the target's
    Update,
    Reject(Problem),
}

/// How a source row whose id is already in the target compares with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    Identical,
    Different,
}

/// The keys of the table a row refers to.
#[derive(Default)]
pub struct ParentKeys {
    pub table: &'static str,
    /// index of the referring column in the child's row
    pub column: usize,
    /// present after the import so far
    pub present: KeySet,
    /// rejected by this import
    pub rejected: KeySet,
}

/// What one table's rows are decided against, and what the decided rows
/// add to it.
pub struct Decider {
    table: &'static Table,
    /// sync: the table ends up holding the file's rows and only those; a
    /// changed row is updated, and a target row the file lacks goes
    sync: bool,
    /// keys in the target before the import; None when the caller tells,
    /// row by row, whether the target has the row's key (a table no other
    /// refers to needs no set), and, in a sync, which rows the file lacks
    existing: Option<KeySet>,
    /// the unique column's index and the values taken so far
    unique: Option<(usize, HashSet<String>)>,
    parent: Option<ParentKeys>,
    imported: KeySet,
    /// keys present once this table is done
    present: KeySet,
    rejected: KeySet,
}

/// What a table leaves for the tables after it: its keys, and its parent's.
pub struct DecidedKeys {
    pub present: KeySet,
    pub rejected: KeySet,
    pub parent: Option<ParentKeys>,
    /// sync: the target's rows the file does not have, to be deleted, when
    /// the decider knew the target's keys
    pub absent: Vec<Key>,
    /// how many rows the target held before
    pub held: usize,
}

impl Decider {
    /// `taken`: the unique column's values already in the target.
    pub fn new(
        table: &'static Table,
        existing: Option<KeySet>,
        taken: HashSet<String>,
        parent: Option<ParentKeys>,
        sync: bool,
    ) -> Decider {
        let unique = table
            .unique
            .and_then(|name| table.column_index(name))
            .map(|i| (i, taken));
        Decider {
            table,
            sync,
            // A sync keeps only the rows the file has; other modes keep
            // every row the target holds.
            present: if sync {
                KeySet::default()
            } else {
                existing.clone().unwrap_or_default()
            },
            existing,
            unique,
            parent,
            imported: KeySet::default(),
            rejected: KeySet::default(),
        }
    }

    /// Makes room for the keys of `rows` more rows, which a sync keeps:
    /// growing a set of a million keys step by step costs more than the
    /// look-ups in it.
    pub fn expect_rows(&mut self, rows: usize) {
        if self.sync {
            self.present.reserve(rows);
        }
    }

    /// Whether the decider has the target's keys; if not, `decide` needs to
    /// be told whether the target has each row's key.
    pub fn knows_target(&self) -> bool {
        self.existing.is_some()
    }

    /// Whether the decider knows the target's keys, and there are none.
    pub fn target_is_empty(&self) -> bool {
        self.existing.as_ref().is_some_and(KeySet::is_empty)
    }

    /// Decides one row, as far as it can without the target's row of the
    /// same id. `mapped` is the row's mapping, or its problem with the key
    /// it has; `unplaced` a value in a column the council schema lacks;
    /// `in_target` whether the target has the row's key, when the decider
    /// does not know its keys. Records the outcome in the table's key sets.
    pub fn decide<'a>(
        &mut self,
        mapped: Result<Vec<Value<'a>>, (Problem, Option<Key>)>,
        unplaced: Option<Problem>,
        in_target: Option<bool>,
    ) -> Decision<'a> {
        let decision = match mapped {
            Err((problem, key)) => Decision::Reject(problem, key),
            Ok(values) => match (self.check(values, in_target), unplaced) {
                (Decision::Import(_, key), Some(problem)) => Decision::Reject(problem, Some(key)),
                (other, _) => other,
            },
        };
        self.record(&decision);
        decision
    }

    /// The fate of a row [`Decider::decide`] left to the comparison.
    pub fn resolve(&mut self, key: Key, existing: Option<Existing>) -> Resolution {
        match existing {
            Some(Existing::Identical) => {
                // An id the file repeats, rejected before as a different row,
                // is a parent again: the database's row is the file's.
                if self.rejected.contains(&key) {
                    self.present.insert(key);
                }
                Resolution::Skip
            }
            Some(Existing::Different) if self.sync => Resolution::Update,
            // None: gone since the import read the target's keys, which its
            // locks prevent; a conflict either way.
            Some(Existing::Different) | None => {
                self.present.remove(&key);
                self.rejected.insert(key);
                Resolution::Reject(self.key_problem(
                    key,
                    sqlstate::UNIQUE_VIOLATION,
                    "is already in the database with different content; it was left as it is",
                ))
            }
        }
    }

    fn check<'a>(&mut self, values: Vec<Value<'a>>, in_target: Option<bool>) -> Decision<'a> {
        let Some(key) = values.first().and_then(Key::of) else {
            let problem = Problem {
                column: self.table.key().name.into(),
                sqlstate: sqlstate::NOT_NULL_VIOLATION,
                reason: "is not a usable id".into(),
                value: String::new(),
            };
            return Decision::Reject(problem, None);
        };
        // A sync keeps one row per id, so a repeated id is a conflict there
        // whether or not the target has it. There `present` holds every key
        // the file gave so far (a sync stops at its first rejected row), and
        // one look-up serves.
        let repeated = if self.sync {
            self.present.contains(&key)
        } else {
            self.imported.contains(&key)
        };
        if repeated {
            return Decision::Reject(
                self.key_problem(key, sqlstate::UNIQUE_VIOLATION, "is the id of another row of this file (ids that differ only in spelling map to one UUID)"),
                Some(key),
            );
        }
        let exists = match &self.existing {
            Some(existing) => existing.contains(&key),
            None => in_target.unwrap_or(false),
        };
        // An updated row must keep a parent just as a new one must have one;
        // a row left as it is keeps the parent it has.
        if exists && !self.sync {
            return Decision::Compare(values, key);
        }
        if let Some(problem) = self.missing_parent(&values) {
            return Decision::Reject(problem, Some(key));
        }
        if exists {
            return Decision::Compare(values, key);
        }
        if let Some(problem) = self.taken_unique_value(&values) {
            return Decision::Reject(problem, Some(key));
        }
        Decision::Import(values, key)
    }

    fn key_problem(&self, key: Key, sqlstate: SqlState, reason: &str) -> Problem {
        Problem {
            column: self.table.key().name.into(),
            sqlstate,
            reason: reason.into(),
            value: key.to_string(),
        }
    }

    /// A row whose parent neither the file nor the database has, or whose
    /// parent this import rejected (the database's row of that id is not the
    /// file's row).
    fn missing_parent(&self, values: &[Value<'_>]) -> Option<Problem> {
        let parent = self.parent.as_ref()?;
        let parent_key = values.get(parent.column).and_then(Key::of)?;
        if parent.present.contains(&parent_key) {
            return None;
        }
        let reason = if parent.rejected.contains(&parent_key) {
            format!(
                "refers to {} row {parent_key}, which was rejected",
                parent.table
            )
        } else {
            format!(
                "refers to {} row {parent_key}, which neither the file nor the database has",
                parent.table
            )
        };
        Some(Problem {
            column: self.table.columns.get(parent.column)?.name.into(),
            sqlstate: sqlstate::FOREIGN_KEY_VIOLATION,
            reason,
            value: parent_key.to_string(),
        })
    }

    fn taken_unique_value(&mut self, values: &[Value<'_>]) -> Option<Problem> {
        let (column, taken) = self.unique.as_mut()?;
        let text = values.get(*column).and_then(Value::sql_text)?;
        if taken.insert(text.clone()) {
            return None;
        }
        Some(Problem {
            column: self.table.columns.get(*column)?.name.into(),
            sqlstate: sqlstate::UNIQUE_VIOLATION,
            reason: "is already taken by another row; the column is unique".into(),
            value: mapping::text::cut(&text, super::row::SHOWN_CHARS),
        })
    }

    fn record(&mut self, decision: &Decision<'_>) {
        match decision {
            Decision::Import(_, key) => {
                if !self.sync {
                    self.imported.insert(*key);
                }
                self.present.insert(*key);
            }
            // Other modes start with every existing key present.
            Decision::Compare(_, key) if self.sync => {
                self.present.insert(*key);
            }
            Decision::Compare(..) => {}
            // A rejected key is no parent: rows of the file that hang off it
            // are rejected too, also when the database has a row of that id.
            Decision::Reject(_, Some(key)) => {
                self.present.remove(key);
                self.rejected.insert(*key);
            }
            Decision::Reject(_, None) => {}
        }
    }

    pub fn finish(self) -> DecidedKeys {
        let absent = match &self.existing {
            Some(existing) if self.sync => existing.difference(&self.present).copied().collect(),
            _ => Vec::new(),
        };
        DecidedKeys {
            held: self.existing.as_ref().map_or(0, |existing| existing.len()),
            present: self.present,
            rejected: self.rejected,
            parent: self.parent,
            absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::council::catalog::by_name;
    use std::borrow::Cow;

    fn messages() -> &'static Table {
        by_name("messages").unwrap_or_else(|| unreachable!())
    }

    fn conversation(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    /// A messages row: id, conversation_id, role, content, created_at.
    fn message(id: i64, parent: u128) -> Vec<Value<'static>> {
        vec![
            Value::BigInt(id),
            Value::Uuid(conversation(parent)),
            Value::Text(Cow::Borrowed("user")),
            Value::Text(Cow::Borrowed("hello")),
            Value::Null,
        ]
    }

    fn decider(existing: &[i64], parents: &[u128], rejected_parents: &[u128]) -> Decider {
        decider_for(existing, parents, rejected_parents, false)
    }

    fn decider_for(
        existing: &[i64],
        parents: &[u128],
        rejected_parents: &[u128],
        sync: bool,
    ) -> Decider {
        let table = messages();
        let parent = ParentKeys {
            table: "conversations",
            column: table.column_index("conversation_id").unwrap_or(1),
            present: parents
                .iter()
                .map(|p| Key::Uuid(conversation(*p)))
                .collect(),
            rejected: rejected_parents
                .iter()
                .map(|p| Key::Uuid(conversation(*p)))
                .collect(),
        };
        Decider::new(
            table,
            Some(existing.iter().map(|k| Key::Int(*k)).collect()),
            HashSet::new(),
            Some(parent),
            sync,
        )
    }

    fn outcome(decision: Decision<'_>) -> String {
        match decision {
            Decision::Import(_, key) => format!("import {key}"),
            Decision::Compare(_, key) => format!("compare {key}"),
            Decision::Reject(problem, _) => {
                format!(
                    "reject {} {}: {}",
                    problem.sqlstate, problem.column, problem.reason
                )
            }
        }
    }

    fn resolution(resolution: Resolution) -> String {
        match resolution {
            Resolution::Skip => "skip".into(),
            Resolution::Update => "update".into(),
            Resolution::Reject(problem) => format!("reject {}", problem.reason),
        }
    }

    /// What the decider makes of message `id` of conversation `parent`.
    fn decide(d: &mut Decider, id: i64, parent: u128) -> String {
        outcome(d.decide(Ok(message(id, parent)), None, None))
    }

    /// How the decider settles message `id`, found in the target as `existing`.
    fn resolve(d: &mut Decider, id: i64, existing: Existing) -> String {
        resolution(d.resolve(Key::Int(id), Some(existing)))
    }

    #[test]
    fn a_new_row_with_its_parent_is_imported_once() {
        let mut d = decider(&[], &[7], &[]);
        assert_eq!(decide(&mut d, 1, 7), "import 1");
        assert!(decide(&mut d, 1, 7).starts_with("reject 23505 id: is the id of another row"));
    }

    #[test]
    fn an_existing_row_is_skipped_when_identical_and_rejected_when_not() {
        let mut d = decider(&[1, 2], &[7], &[]);
        assert_eq!(decide(&mut d, 1, 7), "compare 1");
        assert_eq!(decide(&mut d, 2, 7), "compare 2");
        assert_eq!(resolve(&mut d, 1, Existing::Identical), "skip");
        assert!(resolve(&mut d, 2, Existing::Different).contains("different content"));
        let keys = d.finish();
        assert!(keys.present.contains(&Key::Int(1)));
        assert!(
            !keys.present.contains(&Key::Int(2)),
            "a rejected row is no parent"
        );
        assert!(keys.rejected.contains(&Key::Int(2)));
    }

    #[test]
    fn a_child_of_a_missing_or_rejected_parent_is_rejected_with_the_reason() {
        let mut d = decider(&[], &[7], &[8]);
        assert!(decide(&mut d, 1, 9).starts_with(&format!(
            "reject 23503 conversation_id: refers to conversations row {}, which neither",
            conversation(9)
        )));
        assert!(decide(&mut d, 2, 8).ends_with("which was rejected"));
    }

    #[test]
    fn an_unmapped_row_or_an_unplaced_value_is_rejected() {
        let mut d = decider(&[], &[7], &[]);
        let problem = Problem {
            column: "created_at".into(),
            sqlstate: sqlstate::INVALID_DATETIME_FORMAT,
            reason: "is not a time".into(),
            value: "'x'".into(),
        };
        assert_eq!(
            outcome(d.decide(Err((problem.clone(), Some(Key::Int(3)))), None, None)),
            "reject 22007 created_at: is not a time"
        );
        let mut unplaced = problem;
        unplaced.column = "mood".into();
        unplaced.sqlstate = sqlstate::UNDEFINED_COLUMN;
        assert_eq!(
            outcome(d.decide(Ok(message(4, 7)), Some(unplaced), None)),
            "reject 42703 mood: is not a time"
        );
        let keys = d.finish();
        assert_eq!(keys.rejected.len(), 2);
    }

    #[test]
    fn a_row_without_a_usable_id_is_rejected_without_a_key() {
        let mut d = decider(&[], &[7], &[]);
        let mut row = message(1, 7);
        row[0] = Value::Null;
        assert_eq!(
            outcome(d.decide(Ok(row), None, None)),
            "reject 23502 id: is not a usable id"
        );
    }

    #[test]
    fn a_sync_updates_a_changed_row_and_deletes_what_the_file_lacks() {
        let mut d = decider_for(&[1, 2, 3], &[7], &[], true);
        assert_eq!(decide(&mut d, 1, 7), "compare 1");
        assert_eq!(decide(&mut d, 2, 7), "compare 2");
        assert_eq!(decide(&mut d, 4, 7), "import 4");
        assert_eq!(resolve(&mut d, 1, Existing::Identical), "skip");
        assert_eq!(resolve(&mut d, 2, Existing::Different), "update");
        let keys = d.finish();
        assert_eq!(keys.absent, vec![Key::Int(3)]);
        let mut present: Vec<_> = keys.present.into_iter().collect();
        present.sort_by_key(|k| k.to_string());
        assert_eq!(present, vec![Key::Int(1), Key::Int(2), Key::Int(4)]);
    }

    #[test]
    fn a_sync_refuses_a_repeated_id_and_an_updated_row_without_its_parent() {
        let mut d = decider_for(&[1], &[7], &[], true);
        assert_eq!(decide(&mut d, 1, 7), "compare 1");
        assert!(decide(&mut d, 1, 7).starts_with("reject 23505 id: is the id of another row"));
        assert!(decide(&mut d, 2, 9).starts_with("reject 23503"));
        let mut d = decider_for(&[1], &[7], &[], true);
        assert!(
            decide(&mut d, 1, 8).starts_with("reject 23503"),
            "in a sync, an existing row's parent must be in the file too"
        );
    }

    #[test]
    fn without_the_targets_keys_the_caller_says_which_exist() {
        let table = messages();
        let mut d = Decider::new(table, None, HashSet::new(), None, false);
        assert!(!d.knows_target());
        assert_eq!(
            outcome(d.decide(Ok(message(1, 7)), None, Some(true))),
            "compare 1"
        );
        assert_eq!(
            outcome(d.decide(Ok(message(2, 7)), None, Some(false))),
            "import 2"
        );
    }
}
