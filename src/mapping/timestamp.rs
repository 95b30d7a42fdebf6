//! Timestamps as council.db holds them (Python `isoformat()`, SQLite
//! `CURRENT_TIMESTAMP`, Unix epoch seconds) turned into PostgreSQL's
//! `timestamptz` value. Everything without an offset is taken as UTC.

use std::fmt;

use crate::sqlstate::{self, SqlState};
use chrono::{Datelike, NaiveDate};

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// 2000-01-01 00:00:00 UTC, where PostgreSQL counts its timestamps from.
const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
/// 0001-01-01 00:00:00 UTC.
const MIN_UNIX_MICROS: i64 = -62_135_596_800_000_000;
/// 9999-12-31 23:59:59.999999 UTC.
const MAX_UNIX_MICROS: i64 = 253_402_300_799_999_999;
/// chrono's day number (from 0001-01-01 = 1) of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
const MAX_FRACTION_DIGITS: usize = 9;

const NOT_A_TIMESTAMP: &str = "not a date, time or epoch number";
const BAD_EPOCH: &str =
    "epoch seconds must be digits with an optional leading '-' and 1 to 9 digits after a '.'";
const BAD_FRACTION: &str = "expected 1 to 9 digits after the decimal point";
const BAD_OFFSET: &str = "expected a UTC offset such as +00:00, +0000, +00 or Z";

/// An instant with microsecond precision, always within 0001-01-01 and
/// 9999-12-31 UTC so that it fits `timestamptz` and prints with a 4-digit year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    #[cfg(test)]
    pub const MIN: Timestamp = Timestamp(MIN_UNIX_MICROS);
    #[cfg(test)]
    pub const MAX: Timestamp = Timestamp(MAX_UNIX_MICROS);

    pub fn from_unix_micros(micros: i64) -> Result<Self, TimestampError> {
        if (MIN_UNIX_MICROS..=MAX_UNIX_MICROS).contains(&micros) {
            Ok(Timestamp(micros))
        } else {
            Err(TimestampError::OutOfRange)
        }
    }

    /// Microseconds since 1970-01-01 00:00:00 UTC.
    #[must_use]
    #[cfg(test)]
    pub fn unix_micros(self) -> i64 {
        self.0
    }

    /// Microseconds since 2000-01-01 00:00:00 UTC: the Datum of a `timestamptz`.
    #[must_use]
    pub fn postgres_micros(self) -> i64 {
        // Cannot overflow: the range check keeps self.0 far from i64::MIN.
        self.0 - POSTGRES_EPOCH_UNIX_MICROS
    }
}

impl Timestamp {
    /// The instant a `timestamptz` Datum holds (microseconds since
    /// 2000-01-01 UTC); out of range for ±infinity and for years outside
    /// 1 to 9999, which Python's `datetime` cannot hold either.
    pub fn from_postgres_micros(micros: i64) -> Result<Self, TimestampError> {
        Timestamp::from_unix_micros(
            micros
                .checked_add(POSTGRES_EPOCH_UNIX_MICROS)
                .ok_or(TimestampError::OutOfRange)?,
        )
    }

    /// As the app writes a time, `datetime.now(timezone.utc).isoformat()`:
    /// `2026-01-17T10:20:30.123456+00:00`, or without the fraction when it
    /// is zero, as Python leaves it out.
    #[must_use]
    pub fn app_text(self) -> String {
        let seconds = self.0.div_euclid(MICROS_PER_SECOND);
        let micros = self.0.rem_euclid(MICROS_PER_SECOND);
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let mut text = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        );
        if micros != 0 {
            text.push_str(&format!(".{micros:06}"));
        }
        text.push_str("+00:00");
        text
    }
}

/// PostgreSQL's own output for `timestamptz` with `DateStyle = ISO` and
/// `TimeZone = UTC`, so messages show what a query would show.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.div_euclid(MICROS_PER_SECOND);
        let micros = self.0.rem_euclid(MICROS_PER_SECOND);
        let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )?;
        if micros != 0 {
            let fraction = format!("{micros:06}");
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        f.write_str("+00")
    }
}

/// Why a value is not a usable timestamp. The Display never repeats the
/// value itself: the caller shows it, cut, next to the table and row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error(
        "{problem}; expected an ISO 8601 timestamp such as 2026-01-17T10:20:30.123456+00:00 \
         or 2026-01-17 10:20:30, a date such as 2026-01-17, \
         or Unix epoch seconds such as 1760000000.25"
    )]
    Syntax { problem: &'static str },

    #[error("{field} {value} is out of range (expected {min:02} to {max:02})")]
    FieldOutOfRange {
        field: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },

    #[error("day {day} does not exist in {year:04}-{month:02}")]
    NoSuchDay { year: i32, month: u32, day: u32 },

    #[error("UTC offset {field} {value} is out of range (expected at most {max})")]
    OffsetOutOfRange {
        field: &'static str,
        value: u32,
        max: u32,
    },

    #[error(
        "timestamp is outside the supported range \
         0001-01-01 00:00:00+00 to 9999-12-31 23:59:59.999999+00"
    )]
    OutOfRange,

    #[error("epoch seconds must be a finite number, not {0}")]
    NotFinite(&'static str),
}

impl TimestampError {
    /// The SQLSTATE PostgreSQL raises for the same fault in `timestamptz` input.
    #[must_use]
    pub fn sqlstate(&self) -> SqlState {
        match self {
            // invalid_datetime_format
            TimestampError::Syntax { .. } => sqlstate::INVALID_DATETIME_FORMAT,
            // datetime_field_overflow: PostgreSQL uses it both for a month 13
            // and for a value beyond the type's range.
            TimestampError::FieldOutOfRange { .. }
            | TimestampError::NoSuchDay { .. }
            | TimestampError::OutOfRange
            | TimestampError::NotFinite(_) => sqlstate::DATETIME_FIELD_OVERFLOW,
            // invalid_time_zone_displacement_value
            TimestampError::OffsetOutOfRange { .. } => {
                sqlstate::INVALID_TIME_ZONE_DISPLACEMENT_VALUE
            }
        }
    }
}

/// Parses a timestamp held as TEXT. Blank text is `Ok(None)`, i.e. NULL.
pub fn parse(text: &str) -> Result<Option<Timestamp>, TimestampError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let body = text.strip_prefix('-').unwrap_or(text);
    // SQLite's type affinity turns a number written into a TEXT column into
    // its text form, so digits alone are epoch seconds, never a compact date.
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_epoch_text(text).map(Some);
    }
    parse_iso(text).map(Some)
}

/// Epoch seconds held as an SQLite INTEGER.
pub fn parse_epoch_integer(value: i64) -> Result<Timestamp, TimestampError> {
    let micros = value
        .checked_mul(MICROS_PER_SECOND)
        .ok_or(TimestampError::OutOfRange)?;
    Timestamp::from_unix_micros(micros)
}

/// Epoch seconds held as an SQLite REAL.
///
/// Rounds the shortest decimal that reads back as the same double (what
/// SQLite and Python would print), not the double's exact binary value, so
/// `1760000000.1` means .100000 and not .099999904.
pub fn parse_epoch_real(value: f64) -> Result<Timestamp, TimestampError> {
    if value.is_nan() {
        return Err(TimestampError::NotFinite("NaN"));
    }
    if value.is_infinite() {
        return Err(TimestampError::NotFinite(if value > 0.0 {
            "infinity"
        } else {
            "-infinity"
        }));
    }
    // Far outside the range anyway, and keeps the decimal text below short.
    if value.abs() >= 1e12 {
        return Err(TimestampError::OutOfRange);
    }
    // Rust prints floats without an exponent, as plain digits.
    let text = value.to_string();
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    epoch_micros(negative, whole.as_bytes(), fraction.as_bytes())
}

fn parse_epoch_text(text: &str) -> Result<Timestamp, TimestampError> {
    let syntax = TimestampError::Syntax { problem: BAD_EPOCH };
    let (negative, body) = match text.strip_prefix('-') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => {
            if fraction.is_empty() || fraction.len() > MAX_FRACTION_DIGITS {
                return Err(syntax);
            }
            (whole, fraction)
        }
        None => (body, ""),
    };
    if whole.is_empty() {
        return Err(syntax);
    }
    epoch_micros(negative, whole.as_bytes(), fraction.as_bytes())
}

/// `whole` and `fraction` are ASCII digits; the fraction may be any length
/// and is rounded half away from zero.
fn epoch_micros(
    negative: bool,
    whole: &[u8],
    fraction: &[u8],
) -> Result<Timestamp, TimestampError> {
    if !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return Err(TimestampError::Syntax { problem: BAD_EPOCH });
    }
    let mut seconds: i64 = 0;
    for &digit in whole {
        seconds = seconds
            .checked_mul(10)
            .and_then(|s| s.checked_add(i64::from(digit - b'0')))
            .ok_or(TimestampError::OutOfRange)?;
    }
    let magnitude = seconds
        .checked_mul(MICROS_PER_SECOND)
        .and_then(|m| m.checked_add(fraction_micros(fraction)))
        .ok_or(TimestampError::OutOfRange)?;
    Timestamp::from_unix_micros(if negative { -magnitude } else { magnitude })
}

/// Rounds half away from zero on the decimal digits themselves; the result
/// may be a whole 1_000_000. PostgreSQL instead computes
/// `rint(strtod(fraction) * 1e6)`, ties to even on a double, so on a 7th
/// digit of exactly 5 it can land 1 µs lower (`.1234565` gives `.123456`
/// there). Python never writes more than 6 digits, so council.db data does
/// not meet the difference; exact decimal rounding was chosen as the rule.
fn fraction_micros(digits: &[u8]) -> i64 {
    let mut micros = 0;
    for index in 0..6 {
        let digit = digits.get(index).map_or(0, |d| i64::from(d - b'0'));
        micros = micros * 10 + digit;
    }
    if digits.get(6).is_some_and(|&d| d >= b'5') {
        micros += 1;
    }
    micros
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn digit_run(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    fn two_digits(&mut self) -> Option<u32> {
        let tens = digit_value(self.peek()?)?;
        let ones = digit_value(*self.bytes.get(self.pos + 1)?)?;
        self.pos += 2;
        Some(tens * 10 + ones)
    }
}

fn digit_value(byte: u8) -> Option<u32> {
    byte.is_ascii_digit().then(|| u32::from(byte - b'0'))
}

fn syntax(problem: &'static str) -> TimestampError {
    TimestampError::Syntax { problem }
}

fn parse_iso(text: &str) -> Result<Timestamp, TimestampError> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        pos: 0,
    };
    let (year, month, day) = parse_date(&mut cursor)?;
    let time = if cursor.at_end() {
        TimeOfDay::default()
    } else {
        parse_time(&mut cursor)?
    };

    // Fields are checked only once the whole shape is known to be right, so
    // a malformed value gets a format error rather than a range error.
    if year == 0 {
        return Err(TimestampError::OutOfRange);
    }
    check_field("month", month, 1, 12)?;
    check_field("day", day, 1, 31)?;
    let year = i32::try_from(year).map_err(|_| TimestampError::OutOfRange)?;
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(TimestampError::NoSuchDay {
        year,
        month,
        day,
    })?;
    check_field("hour", time.hour, 0, 23)?;
    check_field("minute", time.minute, 0, 59)?;
    check_field("second", time.second, 0, 59)?;
    let offset_seconds = time.offset.seconds()?;

    let days = i64::from(date.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
    let local_seconds =
        days * SECONDS_PER_DAY + i64::from(time.hour * 3600 + time.minute * 60 + time.second);
    let utc_seconds = local_seconds - offset_seconds;
    Timestamp::from_unix_micros(utc_seconds * MICROS_PER_SECOND + fraction_micros(time.fraction))
}

/// `YYYY-MM-DD`, its fields unchecked.
fn parse_date(cursor: &mut Cursor<'_>) -> Result<(u32, u32, u32), TimestampError> {
    let year_digits = cursor.digit_run();
    match year_digits.len() {
        0 => return Err(syntax(NOT_A_TIMESTAMP)),
        1..=3 => return Err(syntax("expected a four-digit year")),
        4 => {}
        // A fifth digit is a year past 9999, which PostgreSQL could hold but
        // this importer does not (see the range in TimestampError::OutOfRange).
        _ if cursor.peek() == Some(b'-') => return Err(TimestampError::OutOfRange),
        _ => return Err(syntax("expected '-' after a four-digit year")),
    }
    let year = year_digits
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    if !cursor.eat(b'-') {
        return Err(syntax("expected '-' after the year"));
    }
    let month = cursor
        .two_digits()
        .ok_or_else(|| syntax("expected a two-digit month"))?;
    if !cursor.eat(b'-') {
        return Err(syntax("expected '-' after the month"));
    }
    let day = cursor
        .two_digits()
        .ok_or_else(|| syntax("expected a two-digit day"))?;
    Ok((year, month, day))
}

/// The time after a date, its fields unchecked: midnight UTC when the
/// date stands alone.
#[derive(Default)]
struct TimeOfDay<'a> {
    hour: u32,
    minute: u32,
    second: u32,
    fraction: &'a [u8],
    offset: Offset,
}

/// `THH:MM[:SS[.ffffff]][Z|±HH[:MM]]` (or a space for the `T`), to the end.
fn parse_time<'a>(cursor: &mut Cursor<'a>) -> Result<TimeOfDay<'a>, TimestampError> {
    let mut time = TimeOfDay::default();
    if !matches!(cursor.peek(), Some(b'T' | b't' | b' ')) {
        return Err(syntax(
            "expected 'T' or a space between the date and the time",
        ));
    }
    cursor.pos += 1;
    time.hour = cursor
        .two_digits()
        .ok_or_else(|| syntax("expected a two-digit hour"))?;
    if !cursor.eat(b':') {
        return Err(syntax("expected ':' after the hour"));
    }
    time.minute = cursor
        .two_digits()
        .ok_or_else(|| syntax("expected two-digit minutes"))?;
    if cursor.eat(b':') {
        time.second = cursor
            .two_digits()
            .ok_or_else(|| syntax("expected two-digit seconds"))?;
        if cursor.eat(b'.') {
            time.fraction = cursor.digit_run();
            if time.fraction.is_empty() || time.fraction.len() > MAX_FRACTION_DIGITS {
                return Err(syntax(BAD_FRACTION));
            }
        }
    }
    match cursor.peek() {
        None => {}
        Some(b'Z' | b'z') => cursor.pos += 1,
        Some(sign @ (b'+' | b'-')) => {
            cursor.pos += 1;
            time.offset = parse_offset(cursor, sign == b'-')?;
        }
        Some(_) => {
            return Err(syntax(
                "unexpected text after the time; expected a UTC offset such as +00:00 or Z",
            ));
        }
    }
    if !cursor.at_end() {
        return Err(syntax("unexpected text after the UTC offset"));
    }
    Ok(time)
}

fn check_field(field: &'static str, value: u32, min: u32, max: u32) -> Result<(), TimestampError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(TimestampError::FieldOutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

#[derive(Default)]
struct Offset {
    negative: bool,
    hours: u32,
    minutes: u32,
    seconds: u32,
}

impl Offset {
    /// Seconds to subtract from local time to get UTC.
    fn seconds(&self) -> Result<i64, TimestampError> {
        // Python allows offsets up to 23:59:59; PostgreSQL only to 15:59:59,
        // but converting to UTC here makes the wider range harmless.
        for (field, value, max) in [
            ("hours", self.hours, 23),
            ("minutes", self.minutes, 59),
            ("seconds", self.seconds, 59),
        ] {
            if value > max {
                return Err(TimestampError::OffsetOutOfRange { field, value, max });
            }
        }
        let magnitude = i64::from(self.hours * 3600 + self.minutes * 60 + self.seconds);
        Ok(if self.negative { -magnitude } else { magnitude })
    }
}

/// `+HH`, `+HHMM`, `+HH:MM`, `+HH:MM:SS` (Python prints seconds when the
/// offset has them), `+HHMMSS`; the sign is already consumed. Anything left
/// over is the caller's to reject.
fn parse_offset(cursor: &mut Cursor<'_>, negative: bool) -> Result<Offset, TimestampError> {
    let next_is_digit = |cursor: &Cursor<'_>| cursor.peek().is_some_and(|b| b.is_ascii_digit());
    let mut offset = Offset {
        negative,
        ..Offset::default()
    };
    offset.hours = cursor.two_digits().ok_or_else(|| syntax(BAD_OFFSET))?;
    let colon = cursor.eat(b':');
    if !colon && !next_is_digit(cursor) {
        return Ok(offset);
    }
    offset.minutes = cursor.two_digits().ok_or_else(|| syntax(BAD_OFFSET))?;
    let more = if colon {
        cursor.eat(b':')
    } else {
        next_is_digit(cursor)
    };
    if more {
        offset.seconds = cursor.two_digits().ok_or_else(|| syntax(BAD_OFFSET))?;
    }
    Ok(offset)
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01, by
/// Howard Hinnant's `civil_from_days`; plain arithmetic, so it cannot fail.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and unwraps to micros; the expected values below were computed
    /// with Python's `datetime`, independently of this code.
    fn micros(text: &str) -> i64 {
        parse(text)
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}")) // ok: test assertion
            .unwrap_or_else(|| panic!("{text:?} should not be NULL")) // ok: test assertion
            .unix_micros()
    }

    fn error(text: &str) -> TimestampError {
        match parse(text) {
            Err(e) => e,
            Ok(v) => panic!("{text:?} should be rejected, got {v:?}"), // ok: test assertion
        }
    }

    const T: i64 = 1_768_645_230_000_000; // 2026-01-17T10:20:30Z

    #[test]
    fn python_isoformat_with_offset() {
        assert_eq!(
            micros("2026-01-17T10:20:30.123456+00:00"),
            1_768_645_230_123_456
        );
        assert_eq!(micros("2026-01-17T10:20:30+00:00"), T);
        assert_eq!(micros("2026-01-17T10:20:30-00:00"), T);
    }

    #[test]
    fn offsets_convert_to_utc() {
        assert_eq!(micros("2026-01-17T12:20:30+02:00"), T);
        assert_eq!(micros("2026-01-17T12:20:30+0200"), T);
        assert_eq!(micros("2026-01-17T12:20:30+02"), T);
        assert_eq!(micros("2026-01-17T05:50:30-04:30"), T);
        assert_eq!(micros("2026-01-17T05:50:30-0430"), T);
        assert_eq!(micros("2026-01-17T15:50:45+05:30:15"), T);
        assert_eq!(micros("2026-01-17T15:50:45+053015"), T);
        assert_eq!(micros("2026-01-17T15:50:45.5+05:30:15"), T + 500_000);
        // Crossing midnight and a year boundary.
        assert_eq!(micros("2026-01-18T09:20:30+23:00"), T);
        assert_eq!(micros("2025-12-31T23:00:00-01:00"), 1_767_225_600_000_000);
        assert_eq!(micros("2026-01-16T10:21:30-23:59"), T);
    }

    #[test]
    fn naive_is_utc() {
        assert_eq!(micros("2026-01-17T10:20:30.123456"), 1_768_645_230_123_456);
        assert_eq!(micros("2026-01-17T10:20:30"), T);
        assert_eq!(micros("2026-01-17 10:20:30"), T);
        assert_eq!(micros("2026-01-17t10:20:30"), T);
        assert_eq!(micros("2026-01-17 10:20:30.5"), T + 500_000);
        assert_eq!(micros("2026-01-17T10:20"), T - 30_000_000);
    }

    #[test]
    fn z_suffix() {
        assert_eq!(micros("2026-01-17T10:20:30Z"), T);
        assert_eq!(micros("2026-01-17T10:20:30z"), T);
        assert_eq!(micros("2026-01-17T10:20:30.123456Z"), 1_768_645_230_123_456);
        assert_eq!(micros("2026-01-17 10:20Z"), T - 30_000_000);
    }

    #[test]
    fn date_alone_is_midnight_utc() {
        assert_eq!(micros("2026-01-17"), 1_768_608_000_000_000);
        assert_eq!(micros("2000-01-01"), 946_684_800_000_000);
        assert_eq!(micros("1970-01-01"), 0);
        assert_eq!(micros("1900-03-01"), -2_203_891_200_000_000);
        assert_eq!(micros("0001-01-01"), MIN_UNIX_MICROS);
        assert_eq!(micros("2024-02-29"), 1_709_164_800_000_000);
    }

    #[test]
    fn fraction_digits_one_to_nine() {
        let cases = [
            ("1", 100_000),
            ("12", 120_000),
            ("123", 123_000),
            ("1234", 123_400),
            ("12345", 123_450),
            ("123456", 123_456),
            ("1234564", 123_456),
            ("1234565", 123_457),
            ("12345649", 123_456),
            ("123456500", 123_457),
            ("000000499", 0),
            ("000000500", 1),
        ];
        for (digits, expected) in cases {
            let text = format!("2026-01-17T10:20:30.{digits}Z");
            assert_eq!(micros(&text), T + expected, "{text}");
        }
    }

    #[test]
    fn rounding_carries_into_the_next_day() {
        assert_eq!(micros("2026-01-17T23:59:59.9999995"), 1_768_694_400_000_000);
        assert_eq!(micros("1969-12-31T23:59:59.9999995"), 0);
        assert_eq!(
            error("9999-12-31T23:59:59.9999995"),
            TimestampError::OutOfRange
        );
        assert_eq!(micros("9999-12-31T23:59:59.9999994"), MAX_UNIX_MICROS);
    }

    #[test]
    fn epoch_seconds_as_text() {
        assert_eq!(micros("1760000000"), 1_760_000_000_000_000);
        assert_eq!(micros("1760000000.25"), 1_760_000_000_250_000);
        assert_eq!(micros("1760000000.1234565"), 1_760_000_000_123_457);
        assert_eq!(micros("1760000000.123456789"), 1_760_000_000_123_457);
        assert_eq!(micros("0"), 0);
        assert_eq!(micros("-0"), 0);
        assert_eq!(micros("-1"), -1_000_000);
        assert_eq!(micros("-0.5"), -500_000);
        // Half away from zero applies to the magnitude.
        assert_eq!(micros("-1.0000005"), -1_000_001);
        assert_eq!(micros("-1.0000004"), -1_000_000);
        assert_eq!(micros("0001760000000"), 1_760_000_000_000_000);
        assert_eq!(micros("253402300799.999999"), MAX_UNIX_MICROS);
        assert_eq!(micros("-62135596800"), MIN_UNIX_MICROS);
        // Digits alone are always epoch seconds, never a compact date.
        assert_eq!(micros("20260117"), 20_260_117_000_000);
    }

    #[test]
    fn epoch_text_rejections() {
        for text in ["1.", ".5", "-.5", "1.2.3", "1..2", "1.1234567890", "-", "."] {
            let e = error(text);
            assert_eq!(e.sqlstate(), "22007", "{text}: {e}");
        }
        assert_eq!(error("1."), syntax(BAD_EPOCH));
        for text in [
            "253402300800",
            "-62135596801",
            "-62135596800.000001",
            "9223372036854775807",
            "99999999999999999999999999",
            // Milliseconds (JavaScript's Date.now()) land past 9999.
            "1760000000000",
        ] {
            assert_eq!(error(text), TimestampError::OutOfRange, "{text}");
        }
    }

    #[test]
    fn blank_is_null_and_whitespace_is_trimmed() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse(" \t\r\n "), Ok(None));
        assert_eq!(micros("  2026-01-17T10:20:30Z\n"), T);
        assert_eq!(micros("\t1760000000 "), 1_760_000_000_000_000);
    }

    /// Values of a wrong shape, each with the message that says what is
    /// wrong with it.
    const SYNTAX_CASES: &[(&str, &str)] = &[
        ("garbage", NOT_A_TIMESTAMP),
        ("yesterday", NOT_A_TIMESTAMP),
        ("now", NOT_A_TIMESTAMP),
        ("-2026-01-17", NOT_A_TIMESTAMP),
        ("T10:20:30", NOT_A_TIMESTAMP),
        ("10:20:30", "expected a four-digit year"),
        ("202-01-17", "expected a four-digit year"),
        ("20260117T102030Z", "expected '-' after a four-digit year"),
        ("2026/01/17", "expected '-' after the year"),
        ("2026-1-17", "expected a two-digit month"),
        ("2026-01-7", "expected a two-digit day"),
        ("2026-011-17", "expected '-' after the month"),
        ("2026-01", "expected '-' after the month"),
        (
            "2026-01-17X10:20:30",
            "expected 'T' or a space between the date and the time",
        ),
        ("2026-01-17  10:20:30", "expected a two-digit hour"),
        ("2026-01-17T", "expected a two-digit hour"),
        ("2026-01-17T1:20:30", "expected a two-digit hour"),
        ("2026-01-17T10", "expected ':' after the hour"),
        ("2026-01-17T10:2", "expected two-digit minutes"),
        ("2026-01-17T10:20:3", "expected two-digit seconds"),
        ("2026-01-17T10:20:30.", BAD_FRACTION),
        ("2026-01-17T10:20:30.1234567890", BAD_FRACTION),
        ("2026-01-17T10:20:30.Z", BAD_FRACTION),
        (
            "2026-01-17T10:20:30,5",
            "unexpected text after the time; expected a UTC offset such as +00:00 or Z",
        ),
        (
            "2026-01-17T10:20:30 +00:00",
            "unexpected text after the time; expected a UTC offset such as +00:00 or Z",
        ),
        (
            "2026-01-17T10:20:30 UTC",
            "unexpected text after the time; expected a UTC offset such as +00:00 or Z",
        ),
        ("2026-01-17T10:20:30+2", BAD_OFFSET),
        ("2026-01-17T10:20:30+", BAD_OFFSET),
        ("2026-01-17T10:20:30+02:", BAD_OFFSET),
        ("2026-01-17T10:20:30+02:0", BAD_OFFSET),
        ("2026-01-17T10:20:30+02:00:", BAD_OFFSET),
        ("2026-01-17T10:20:30+02:00:0", BAD_OFFSET),
        ("2026-01-17T10:20:30+02000", BAD_OFFSET),
        (
            "2026-01-17T10:20:30+0200:00",
            "unexpected text after the UTC offset",
        ),
        (
            "2026-01-17T10:20:30+02:0000",
            "unexpected text after the UTC offset",
        ),
        (
            "2026-01-17T10:20:30+02Z",
            "unexpected text after the UTC offset",
        ),
        (
            "2026-01-17T10:20:30ZZ",
            "unexpected text after the UTC offset",
        ),
        (
            "2026-01-17T10:20:30+00:00Z",
            "unexpected text after the UTC offset",
        ),
        (
            "2026-01-17T10:20:30+00:00:00.5",
            "unexpected text after the UTC offset",
        ),
        (
            "2026-01-17T10:20:30Z garbage",
            "unexpected text after the UTC offset",
        ),
        ("2026-01-17 garbage", "expected a two-digit hour"),
        ("２０２６-01-17", NOT_A_TIMESTAMP),
    ];

    #[test]
    fn syntax_rejections() {
        for &(text, problem) in SYNTAX_CASES {
            let e = error(text);
            assert_eq!(e, TimestampError::Syntax { problem }, "{text}");
            assert_eq!(e.sqlstate(), "22007");
        }
    }

    #[test]
    fn field_range_rejections() {
        let e = error("2026-13-45");
        assert_eq!(
            e,
            TimestampError::FieldOutOfRange {
                field: "month",
                value: 13,
                min: 1,
                max: 12
            }
        );
        assert_eq!(
            e.to_string(),
            "month 13 is out of range (expected 01 to 12)"
        );
        assert_eq!(e.sqlstate(), "22008");

        let field = |text: &str| match error(text) {
            TimestampError::FieldOutOfRange { field, value, .. } => (field, value),
            other => panic!("{text}: {other:?}"), // ok: test assertion
        };
        assert_eq!(field("2026-00-01"), ("month", 0));
        assert_eq!(field("2026-01-00"), ("day", 0));
        assert_eq!(field("2026-01-32"), ("day", 32));
        assert_eq!(field("2026-01-17T24:00:00"), ("hour", 24));
        assert_eq!(field("2026-01-17T10:60:00"), ("minute", 60));
        // No leap seconds: SQLite and Python never write them.
        assert_eq!(field("2016-12-31T23:59:60Z"), ("second", 60));

        assert_eq!(
            error("2026-02-29"),
            TimestampError::NoSuchDay {
                year: 2026,
                month: 2,
                day: 29
            }
        );
        assert_eq!(
            error("2026-02-29").to_string(),
            "day 29 does not exist in 2026-02"
        );
        assert_eq!(error("2026-04-31").sqlstate(), "22008");
        assert_eq!(error("1900-02-29").sqlstate(), "22008");
    }

    #[test]
    fn offset_range_rejections() {
        let e = error("2026-01-17T10:20:30+24:00");
        assert_eq!(
            e,
            TimestampError::OffsetOutOfRange {
                field: "hours",
                value: 24,
                max: 23
            }
        );
        assert_eq!(e.sqlstate(), "22009");
        assert_eq!(
            e.to_string(),
            "UTC offset hours 24 is out of range (expected at most 23)"
        );
        assert!(matches!(
            error("2026-01-17T10:20:30+02:60"),
            TimestampError::OffsetOutOfRange {
                field: "minutes",
                value: 60,
                ..
            }
        ));
        assert!(matches!(
            error("2026-01-17T10:20:30-02:00:99"),
            TimestampError::OffsetOutOfRange {
                field: "seconds",
                value: 99,
                ..
            }
        ));
    }

    #[test]
    fn year_range() {
        for text in [
            "0000-01-01",
            "10000-01-01",
            "99999999999-01-01",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:00:00-01:00",
        ] {
            let e = error(text);
            assert_eq!(e, TimestampError::OutOfRange, "{text}");
            assert_eq!(e.sqlstate(), "22008");
        }
        assert_eq!(micros("9999-12-31T23:59:59.999999"), MAX_UNIX_MICROS);
        assert_eq!(
            micros("0001-01-01T00:00:00-01:00"),
            MIN_UNIX_MICROS + 3_600_000_000
        );
    }

    #[test]
    fn syntax_message_says_what_was_expected() {
        assert_eq!(
            error("yesterday").to_string(),
            "not a date, time or epoch number; expected an ISO 8601 timestamp such as \
             2026-01-17T10:20:30.123456+00:00 or 2026-01-17 10:20:30, a date such as \
             2026-01-17, or Unix epoch seconds such as 1760000000.25"
        );
        assert_eq!(
            TimestampError::OutOfRange.to_string(),
            "timestamp is outside the supported range \
             0001-01-01 00:00:00+00 to 9999-12-31 23:59:59.999999+00"
        );
    }

    #[test]
    fn display_matches_postgres_text_form() {
        let shown = |text: &str| {
            parse(text)
                .expect("test value")
                .expect("test value")
                .to_string()
        };
        assert_eq!(
            shown("2026-01-17T10:20:30.123456+00:00"),
            "2026-01-17 10:20:30.123456+00"
        );
        assert_eq!(shown("2026-01-17T10:20:30+00:00"), "2026-01-17 10:20:30+00");
        assert_eq!(shown("2026-01-17T10:20:30.5Z"), "2026-01-17 10:20:30.5+00");
        assert_eq!(
            shown("2026-01-17T10:20:30.120Z"),
            "2026-01-17 10:20:30.12+00"
        );
        assert_eq!(
            shown("2026-01-17T10:20:30.000001Z"),
            "2026-01-17 10:20:30.000001+00"
        );
        assert_eq!(shown("2026-01-17T12:20:30+02:00"), "2026-01-17 10:20:30+00");
        assert_eq!(shown("2026-01-17"), "2026-01-17 00:00:00+00");
        assert_eq!(shown("-0.5"), "1969-12-31 23:59:59.5+00");
        assert_eq!(shown("2024-02-29T23:59:59"), "2024-02-29 23:59:59+00");
        assert_eq!(Timestamp::MIN.to_string(), "0001-01-01 00:00:00+00");
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31 23:59:59.999999+00");
    }

    #[test]
    fn postgres_micros_count_from_2000() {
        assert_eq!(
            parse("2000-01-01")
                .expect("test value")
                .expect("test value")
                .postgres_micros(),
            0
        );
        assert_eq!(
            parse("2026-01-17T10:20:30.123456+00:00")
                .expect("test value")
                .expect("test value")
                .postgres_micros(),
            821_960_430_123_456
        );
        assert_eq!(Timestamp::MIN.postgres_micros(), -63_082_281_600_000_000);
        assert_eq!(Timestamp::MAX.postgres_micros(), 252_455_615_999_999_999);
    }

    #[test]
    fn from_unix_micros_checks_the_range() {
        assert_eq!(
            Timestamp::from_unix_micros(0)
                .expect("test value")
                .unix_micros(),
            0
        );
        assert_eq!(
            Timestamp::from_unix_micros(MIN_UNIX_MICROS),
            Ok(Timestamp::MIN)
        );
        assert_eq!(
            Timestamp::from_unix_micros(MAX_UNIX_MICROS),
            Ok(Timestamp::MAX)
        );
        assert_eq!(
            Timestamp::from_unix_micros(MIN_UNIX_MICROS - 1),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            Timestamp::from_unix_micros(MAX_UNIX_MICROS + 1),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            Timestamp::from_unix_micros(i64::MIN),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn range_constants_agree_with_chrono() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("test value");
        assert_eq!(i64::from(epoch.num_days_from_ce()), UNIX_EPOCH_DAYS_FROM_CE);
        let micros_at = |y, m, d| {
            NaiveDate::from_ymd_opt(y, m, d)
                .expect("test value")
                .and_hms_opt(0, 0, 0)
                .expect("test value")
                .and_utc()
                .timestamp_micros()
        };
        assert_eq!(micros_at(1, 1, 1), MIN_UNIX_MICROS);
        assert_eq!(micros_at(10000, 1, 1) - 1, MAX_UNIX_MICROS);
        assert_eq!(micros_at(2000, 1, 1), POSTGRES_EPOCH_UNIX_MICROS);
    }

    #[test]
    fn epoch_integer() {
        assert_eq!(
            parse_epoch_integer(1_760_000_000)
                .expect("test value")
                .unix_micros(),
            1_760_000_000_000_000
        );
        assert_eq!(parse_epoch_integer(0).expect("test value").unix_micros(), 0);
        assert_eq!(parse_epoch_integer(-62_135_596_800), Ok(Timestamp::MIN));
        assert_eq!(
            parse_epoch_integer(253_402_300_799)
                .expect("test value")
                .unix_micros(),
            MAX_UNIX_MICROS - 999_999
        );
        for value in [
            -62_135_596_801,
            253_402_300_800,
            i64::MAX,
            i64::MIN,
            1_760_000_000_000,
        ] {
            let e = parse_epoch_integer(value).unwrap_err();
            assert_eq!(e, TimestampError::OutOfRange, "{value}");
            assert_eq!(e.sqlstate(), "22008");
        }
    }

    #[test]
    fn epoch_real() {
        let real = |v: f64| parse_epoch_real(v).expect("test value").unix_micros();
        assert_eq!(real(1_760_000_000.25), 1_760_000_000_250_000);
        assert_eq!(real(1_760_000_000.0), 1_760_000_000_000_000);
        // The double nearest 1760000000.1 is 1760000000.0999999046...; the
        // decimal SQLite shows is what was meant.
        assert_eq!(real(1_760_000_000.1), 1_760_000_000_100_000);
        assert_eq!(real(-0.5), -500_000);
        assert_eq!(real(-0.0), 0);
        assert_eq!(real(1e-7), 0);
        assert_eq!(real(5e-7), 1);
        assert_eq!(real(-5e-7), -1);
        assert_eq!(real(f64::MIN_POSITIVE), 0);
        assert_eq!(real(0.1234565), 123_457);
        assert_eq!(real(-62_135_596_800.0), MIN_UNIX_MICROS);
        assert_eq!(real(253_402_300_799.0), MAX_UNIX_MICROS - 999_999);
    }

    #[test]
    fn epoch_real_rejections() {
        assert_eq!(
            parse_epoch_real(f64::NAN),
            Err(TimestampError::NotFinite("NaN"))
        );
        assert_eq!(
            parse_epoch_real(f64::INFINITY),
            Err(TimestampError::NotFinite("infinity"))
        );
        assert_eq!(
            parse_epoch_real(f64::NEG_INFINITY),
            Err(TimestampError::NotFinite("-infinity"))
        );
        assert_eq!(parse_epoch_real(f64::NAN).unwrap_err().sqlstate(), "22008");
        assert_eq!(
            parse_epoch_real(f64::NAN).unwrap_err().to_string(),
            "epoch seconds must be a finite number, not NaN"
        );
        for value in [
            253_402_300_800.0,
            -62_135_596_800.5,
            1e12,
            -1e12,
            1e300,
            f64::MAX,
            f64::MIN,
        ] {
            assert_eq!(
                parse_epoch_real(value),
                Err(TimestampError::OutOfRange),
                "{value}"
            );
        }
    }

    #[test]
    fn civil_from_days_known_points() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }

    mod properties {
        use super::*;
        use chrono::{DateTime, NaiveDateTime, Timelike};
        use proptest::prelude::*;

        fn naive(micros: i64) -> NaiveDateTime {
            DateTime::from_timestamp_micros(micros)
                .expect("test value")
                .naive_utc()
        }

        fn date_part(t: &NaiveDateTime) -> String {
            format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())
        }

        fn time_part(t: &NaiveDateTime) -> String {
            format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
        }

        fn micro_digits(t: &NaiveDateTime) -> String {
            format!("{:06}", t.nanosecond() / 1000)
        }

        fn offset_text(minutes: i64, colon: bool) -> String {
            let sign = if minutes < 0 { '-' } else { '+' };
            let abs = minutes.abs();
            let sep = if colon { ":" } else { "" };
            format!("{sign}{:02}{sep}{:02}", abs / 60, abs % 60)
        }

        fn reparsed(text: &str) -> i64 {
            match parse(text) {
                Ok(Some(t)) => t.unix_micros(),
                other => panic!("{text:?} gave {other:?}"), // ok: test assertion
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn parse_never_panics(text in "\\PC*") {
                let _ = parse(&text);
            }

            #[test]
            fn parse_never_panics_on_near_misses(text in "[-0-9T :.+Zz]{0,40}") {
                let _ = parse(&text);
            }

            #[test]
            fn every_accepted_form_reads_back(micros in MIN_UNIX_MICROS..=MAX_UNIX_MICROS) {
                let t = naive(micros);
                let (date, time, frac6) = (date_part(&t), time_part(&t), micro_digits(&t));
                let trimmed = frac6.trim_end_matches('0');
                let short = if trimmed.is_empty() { String::new() } else { format!(".{trimmed}") };
                let forms = [
                    format!("{date}T{time}.{frac6}+00:00"),
                    format!("{date}T{time}{short}+00:00"),
                    format!("{date}T{time}.{frac6}"),
                    format!("{date} {time}{short}"),
                    format!("{date}T{time}.{frac6}000Z"),
                    format!("{date}t{time}{short}z"),
                    format!("{date} {time}{short}+0000"),
                    format!("{date} {time}{short}-00"),
                    format!("  {date}T{time}{short}Z\n"),
                    Timestamp(micros).to_string(),
                ];
                for form in &forms {
                    prop_assert_eq!(reparsed(form), micros, "{}", form);
                }
                let seconds = micros.div_euclid(MICROS_PER_SECOND);
                let fraction = micros.rem_euclid(MICROS_PER_SECOND);
                let epoch = if micros < 0 {
                    let abs = micros.unsigned_abs();
                    format!("-{}.{:06}", abs / 1_000_000, abs % 1_000_000)
                } else {
                    format!("{seconds}.{fraction:06}")
                };
                prop_assert_eq!(reparsed(&epoch), micros, "{}", epoch);
            }

            #[test]
            fn offsets_read_back(
                micros in MIN_UNIX_MICROS..=MAX_UNIX_MICROS,
                offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i64),
            ) {
                let local_micros = micros + offset_minutes * 60 * MICROS_PER_SECOND;
                prop_assume!((MIN_UNIX_MICROS..=MAX_UNIX_MICROS).contains(&local_micros));
                let t = naive(local_micros);
                let stem = format!("{}T{}.{}", date_part(&t), time_part(&t), micro_digits(&t));
                for colon in [true, false] {
                    let form = format!("{stem}{}", offset_text(offset_minutes, colon));
                    prop_assert_eq!(reparsed(&form), micros, "{}", form);
                }
                if offset_minutes % 60 == 0 {
                    let hours = offset_text(offset_minutes, false);
                    let form = format!("{stem}{}", &hours[..3]);
                    prop_assert_eq!(reparsed(&form), micros, "{}", form);
                }
            }

            #[test]
            fn dates_read_back(days in -719_162i64..=2_932_896) {
                let micros = days * SECONDS_PER_DAY * MICROS_PER_SECOND;
                let form = date_part(&naive(micros));
                prop_assert_eq!(reparsed(&form), micros, "{}", form);
            }

            #[test]
            fn display_agrees_with_chrono(micros in MIN_UNIX_MICROS..=MAX_UNIX_MICROS) {
                let t = naive(micros);
                let shown = Timestamp(micros).to_string();
                let fraction = micro_digits(&t);
                let fraction = fraction.trim_end_matches('0');
                let dot = if fraction.is_empty() { "" } else { "." };
                let expected = format!("{} {}{dot}{fraction}+00", date_part(&t), time_part(&t));
                prop_assert_eq!(shown, expected);
            }

            #[test]
            fn epoch_integer_matches_text(seconds in -62_135_596_800i64..=253_402_300_799) {
                prop_assert_eq!(
                    parse_epoch_integer(seconds).expect("test value").unix_micros(),
                    reparsed(&seconds.to_string())
                );
            }

            // Below 2^31 s a double's spacing is under 0.5 µs, so every whole
            // microsecond survives the trip through f64.
            #[test]
            fn epoch_real_keeps_microseconds(micros in -(1i64 << 31) * 1_000_000..(1i64 << 31) * 1_000_000) {
                let value = micros as f64 / 1e6;
                prop_assert_eq!(parse_epoch_real(value).expect("test value").unix_micros(), micros, "{}", value);
            }
        }
    }

    #[test]
    fn app_text_is_what_python_isoformat_prints_and_parses_back() {
        for (text, printed) in [
            (
                "2026-01-17T10:20:30.123456+00:00",
                "2026-01-17T10:20:30.123456+00:00",
            ),
            (
                "2026-01-17T10:20:30.120000",
                "2026-01-17T10:20:30.120000+00:00",
            ),
            ("2026-01-17 10:20:30", "2026-01-17T10:20:30+00:00"),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:00"),
            (
                "9999-12-31T23:59:59.999999+00:00",
                "9999-12-31T23:59:59.999999+00:00",
            ),
            (
                "1969-12-31T23:59:59.5+00:00",
                "1969-12-31T23:59:59.500000+00:00",
            ),
        ] {
            let time = parse(text).expect("parses").expect("not blank");
            assert_eq!(time.app_text(), printed, "{text}");
            assert_eq!(parse(&time.app_text()), Ok(Some(time)), "{text} round trip");
        }
    }

    #[test]
    fn a_postgres_datum_outside_python_years_is_out_of_range() {
        let time = Timestamp::from_postgres_micros(0).expect("2000-01-01");
        assert_eq!(time.app_text(), "2000-01-01T00:00:00+00:00");
        assert_eq!(
            Timestamp::from_postgres_micros(time.postgres_micros()),
            Ok(time)
        );
        for infinity in [i64::MIN, i64::MAX] {
            assert_eq!(
                Timestamp::from_postgres_micros(infinity),
                Err(TimestampError::OutOfRange)
            );
        }
        assert_eq!(
            Timestamp::from_postgres_micros(Timestamp::MAX.postgres_micros() + 1),
            Err(TimestampError::OutOfRange)
        );
    }
}
