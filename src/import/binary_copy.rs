//! COPY's binary format, for the rows the import writes: a header, rows
//! of length-prefixed fields in each type's binary send format, a trailer.
//! Binary values skip the text parsing a CSV load pays for. Pure Rust.

use crate::council::row::Value;

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

/// One row of fields already in their binary form (a text's or a bytea's
/// is its bytes).
pub fn raw_row(buf: &mut Vec<u8>, fields: &[&[u8]]) {
    let count = i16::try_from(fields.len()).unwrap_or(i16::MAX);
    buf.extend_from_slice(&count.to_be_bytes());
    for bytes in fields {
        field(buf, bytes);
    }
}

/// One row of fields already in their binary form, or NULL.
pub fn nullable_row(buf: &mut Vec<u8>, fields: &[Option<&[u8]>]) {
    let count = i16::try_from(fields.len()).unwrap_or(i16::MAX);
    buf.extend_from_slice(&count.to_be_bytes());
    for bytes in fields {
        match bytes {
            Some(bytes) => field(buf, bytes),
            None => null(buf),
        }
    }
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
