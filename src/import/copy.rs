//! Writing rows through PostgreSQL's own COPY machinery: the import encodes
//! mapped rows in COPY's binary format and a callback hands them to
//! `CopyFrom`, which inserts in batches and maintains indexes, constraints
//! and foreign-key triggers as `COPY … FROM` would. Binary values skip the
//! text parsing a CSV load pays for.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};
use std::ptr;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;

use super::row::Value;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The binary COPY header: signature, flags, no header extension.
pub fn header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(SIGNATURE);
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

pub fn trailer(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    // SQLite caps a value at 1e9 bytes, below i32::MAX.
    let len = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

/// One row in binary COPY format; a conversation id fills two fields.
pub fn row(buf: &mut Vec<u8>, values: &[Value<'_>]) {
    let fields = values.len()
        + values
            .iter()
            .filter(|v| matches!(v, Value::Conversation { .. }))
            .count();
    let fields = i16::try_from(fields).unwrap_or(i16::MAX);
    buf.extend_from_slice(&fields.to_be_bytes());
    for value in values {
        match value {
            Value::Null => null(buf),
            Value::Conversation { id, legacy_id } => {
                field(buf, id.as_bytes());
                match legacy_id {
                    Some(legacy) => field(buf, legacy.as_bytes()),
                    None => null(buf),
                }
            }
            Value::Uuid(id) => field(buf, id.as_bytes()),
            Value::BigInt(v) => field(buf, &v.to_be_bytes()),
            Value::Integer(v) => field(buf, &v.to_be_bytes()),
            Value::Double(v) => field(buf, &v.to_bits().to_be_bytes()),
            Value::Boolean(v) => field(buf, &[u8::from(*v)]),
            Value::Text(v) => field(buf, v.as_bytes()),
            Value::Timestamp(v) => field(buf, &v.postgres_micros().to_be_bytes()),
            Value::Json(v) => {
                // jsonb's binary input: a version byte, then the JSON text.
                let len = i32::try_from(v.len() + 1).unwrap_or(i32::MAX);
                buf.extend_from_slice(&len.to_be_bytes());
                buf.push(1);
                buf.extend_from_slice(v.as_bytes());
            }
        }
    }
}

/// Produces the next piece of the COPY stream into the buffer; `Ok(false)`
/// once the stream (trailer included) is complete.
pub type Produce<'a> = dyn FnMut(&mut Vec<u8>) -> Result<bool, ErrorReport> + 'a;

struct Pump<'a> {
    produce: &'a mut Produce<'a>,
    pending: Vec<u8>,
    offset: usize,
    done: bool,
}

thread_local! {
    // COPY's callback takes no argument of ours: the pump it reads from is
    // published here for the duration of one CopyFrom.
    static PUMP: Cell<*mut c_void> = const { Cell::new(ptr::null_mut()) };
}

struct Published;

impl Published {
    fn new(pump: &mut Pump<'_>) -> Published {
        PUMP.with(|p| p.set(ptr::from_mut(pump).cast()));
        Published
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        PUMP.with(|p| p.set(ptr::null_mut()));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn read_pump(
    outbuf: *mut c_void,
    minread: c_int,
    maxread: c_int,
) -> c_int {
    let pump = PUMP.with(Cell::get).cast::<Pump<'_>>();
    // SAFETY: CopyFrom calls us only between Published::new and its drop,
    // while the pump lives on copy_into's stack.
    let Some(pump) = (unsafe { pump.as_mut() }) else {
        return 0;
    };
    let minread = usize::try_from(minread).unwrap_or(0);
    let maxread = usize::try_from(maxread).unwrap_or(0);
    let mut written = 0usize;
    while written < minread.max(1) && written < maxread {
        if pump.offset == pump.pending.len() {
            if pump.done {
                break;
            }
            pump.pending.clear();
            pump.offset = 0;
            match (pump.produce)(&mut pump.pending) {
                Ok(more) => pump.done = !more,
                Err(report) => report.report(PgLogLevel::ERROR),
            }
            continue;
        }
        let n = (maxread - written).min(pump.pending.len() - pump.offset);
        // SAFETY: COPY gave us room for maxread bytes at outbuf.
        unsafe {
            ptr::copy_nonoverlapping(
                pump.pending.as_ptr().add(pump.offset),
                outbuf.cast::<u8>().add(written),
                n,
            );
        }
        pump.offset += n;
        written += n;
    }
    c_int::try_from(written).unwrap_or(0)
}

// Not in pgrx's bindings; every call goes through pg_guard_ffi_boundary so
// that an ERROR inside becomes a Rust panic rather than a longjmp over our frames.
unsafe extern "C-unwind" {
    fn addRangeTableEntryForRelation(
        pstate: *mut pg_sys::ParseState,
        rel: pg_sys::Relation,
        lockmode: c_int,
        alias: *mut pg_sys::Alias,
        inh: bool,
        in_from_cl: bool,
    ) -> *mut pg_sys::ParseNamespaceItem;
    fn makeDefElem(
        name: *mut std::ffi::c_char,
        arg: *mut pg_sys::Node,
        location: c_int,
    ) -> *mut pg_sys::DefElem;
}

fn palloc_str(s: &str) -> *mut std::ffi::c_char {
    // Names come from our own table specs and never hold a NUL.
    let c = CString::new(s).unwrap_or_default();
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Client encoding, switched to the database's for the length of a COPY:
/// binary text input is converted from the client encoding, and our text is
/// already in the database's (UTF-8).
struct ClientEncoding {
    saved: c_int,
}

impl ClientEncoding {
    fn database() -> ClientEncoding {
        let saved = unsafe { pg_sys::pg_get_client_encoding() };
        let database = unsafe { pg_sys::GetDatabaseEncoding() };
        if saved != database {
            unsafe { pg_sys::SetClientEncoding(database) };
        }
        ClientEncoding { saved }
    }
}

impl Drop for ClientEncoding {
    fn drop(&mut self) {
        if unsafe { pg_sys::pg_get_client_encoding() } != self.saved {
            // The saved encoding was in use, so its conversion is prepared:
            // switching back touches no catalog, also while an error unwinds.
            unsafe { pg_sys::SetClientEncoding(self.saved) };
        }
    }
}

/// session_replication_role = replica for the length of one COPY: only
/// the foreign-key triggers are on the council tables then (the caller
/// checks), and the import has checked every parent itself.
struct WithoutTriggers {
    nest_level: c_int,
}

impl WithoutTriggers {
    fn set() -> WithoutTriggers {
        unsafe {
            let nest_level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                c"session_replication_role".as_ptr(),
                c"replica".as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
            WithoutTriggers { nest_level }
        }
    }

    fn reset(self) {
        // On an error the transaction's abort restores the setting instead.
        unsafe { pg_sys::AtEOXact_GUC(true, self.nest_level) };
    }
}

/// COPYs the stream `produce` writes into table `relid`'s `columns`, with
/// the caller's INSERT privileges checked as `COPY … FROM` checks them.
/// With `skip_triggers`, the table's (foreign-key) triggers do not fire.
/// Returns the number of rows inserted.
pub fn copy_into(
    relid: pg_sys::Oid,
    columns: &[&str],
    skip_triggers: bool,
    produce: &mut Produce<'_>,
) -> u64 {
    let lockmode = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
    unsafe {
        let rel = pg_sys::table_open(relid, lockmode);
        let pstate = pg_sys::make_parsestate(ptr::null_mut());
        let item = pg_sys::ffi::pg_guard_ffi_boundary(|| {
            addRangeTableEntryForRelation(pstate, rel, lockmode, ptr::null_mut(), false, false)
        });
        let rte = (*item).p_rte;
        (*rte).requiredPerms = pg_sys::AclMode::from(pg_sys::ACL_INSERT);
        let mut names = ptr::null_mut::<pg_sys::List>();
        for column in columns {
            let name = palloc_str(column);
            let attnum = pg_sys::get_attnum(relid, name);
            (*rte).insertedCols = pg_sys::bms_add_member(
                (*rte).insertedCols,
                c_int::from(attnum) - pg_sys::FirstLowInvalidHeapAttributeNumber,
            );
            names = pg_sys::lappend(names, pg_sys::makeString(name).cast());
        }
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);

        let format = palloc_str("format");
        let binary = pg_sys::makeString(palloc_str("binary"));
        let binary = pg_sys::ffi::pg_guard_ffi_boundary(|| makeDefElem(format, binary.cast(), -1));
        let options = pg_sys::lappend(ptr::null_mut(), binary.cast());

        let _encoding = ClientEncoding::database();
        let mut pump = Pump {
            // SAFETY: the pump, and so this borrow, ends before copy_into returns.
            produce: std::mem::transmute::<&mut Produce<'_>, &mut Produce<'_>>(produce),
            pending: Vec::with_capacity(1 << 16),
            offset: 0,
            done: false,
        };
        let _published = Published::new(&mut pump);
        let cstate = pg_sys::BeginCopyFrom(
            pstate,
            rel,
            ptr::null_mut(),
            ptr::null(),
            false,
            Some(read_pump),
            names,
            options,
        );
        let triggers_off = skip_triggers.then(WithoutTriggers::set);
        let inserted = pg_sys::CopyFrom(cstate);
        if let Some(off) = triggers_off {
            off.reset();
        }
        pg_sys::EndCopyFrom(cstate);
        pg_sys::free_parsestate(pstate);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        inserted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn rows_encode_in_copy_binary_format() {
        let mut buf = Vec::new();
        header(&mut buf);
        assert_eq!(buf.len(), 19);
        buf.clear();
        row(
            &mut buf,
            &[
                Value::BigInt(3_000_000_000),
                Value::Null,
                Value::Text(Cow::Borrowed("hé")),
                Value::Json(Cow::Borrowed("[]")),
                Value::Boolean(true),
            ],
        );
        let expected: Vec<u8> = [
            &5i16.to_be_bytes()[..],
            &8i32.to_be_bytes(),
            &3_000_000_000i64.to_be_bytes(),
            &(-1i32).to_be_bytes(),
            &3i32.to_be_bytes(),
            "hé".as_bytes(),
            &3i32.to_be_bytes(),
            &[1, b'[', b']'],
            &1i32.to_be_bytes(),
            &[1],
        ]
        .concat();
        assert_eq!(buf, expected);
    }

    #[test]
    fn a_conversation_id_writes_two_fields() {
        let mut buf = Vec::new();
        row(
            &mut buf,
            &[Value::Conversation {
                id: uuid::Uuid::nil(),
                legacy_id: Some("x".into()),
            }],
        );
        assert_eq!(&buf[..2], &2i16.to_be_bytes());
        assert_eq!(buf.len(), 2 + 4 + 16 + 4 + 1);
    }
}
