//! A self-contained PRNG, UUID text and timestamp text.
//!
//! The generator promises the same content for the same options on every
//! machine and every release of this crate's dependencies, so nothing here
//! may come from a crate whose output stream could change between versions.

/// SplitMix64: tiny, fast, and its output is fixed by its definition.
#[derive(Clone)]
pub(super) struct Rng(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// An independent stream per (seed, purpose, index), so that one
    /// conversation's content does not depend on how many values earlier
    /// conversations drew, nor on how the rows are split into transactions.
    pub(super) fn derive(seed: u64, stream: u64, index: u64) -> Self {
        let a = mix(seed.wrapping_add(GOLDEN));
        let b = mix(a ^ stream.wrapping_mul(0xD605_BBB5_8C8A_BB55));
        Rng(mix(b ^ index.wrapping_mul(GOLDEN)))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n`; `n == 0` yields 0 rather than panicking.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    pub(super) fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub(super) fn permille(&mut self, p: u64) -> bool {
        self.below(1000) < p
    }

    /// Callers only pass non-empty static tables.
    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub(super) fn pick_ref<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Index drawn with the given relative weights.
    pub(super) fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len().saturating_sub(1)
    }

    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// A version-4 UUID in its canonical hyphenated text form.
pub(super) fn uuid_v4(rng: &mut Rng, upper: bool) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next_u64().to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let digits = if upper { HEX_UPPER } else { HEX_LOWER };
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0x0f)]));
    }
    out
}

pub(super) const MICROS_PER_SEC: i64 = 1_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so the timeline needs no date crate and no wall clock.
pub(super) const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Microseconds since the Unix epoch at midnight UTC of a date.
pub(super) const fn micros_at(y: i64, m: i64, d: i64) -> i64 {
    days_from_civil(y, m, d) * 86_400 * MICROS_PER_SEC
}

/// The text forms the app leaves in its timestamp columns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum TsForm {
    /// `datetime.now(timezone.utc).isoformat()`
    Aware,
    /// `datetime.utcnow().isoformat()`, the older code paths
    Naive,
    /// SQLite's `CURRENT_TIMESTAMP` column default
    SqliteDefault,
    /// the JSON-to-SQLite migration when the JSON held no date
    Empty,
}

fn push_2(out: &mut String, v: i64) {
    out.push(char::from(b'0' + (v / 10 % 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

pub(super) fn timestamp(micros: i64, form: TsForm) -> String {
    let mut out = String::with_capacity(32);
    if form == TsForm::Empty {
        return out;
    }
    let secs = micros.div_euclid(MICROS_PER_SEC);
    let frac = micros.rem_euclid(MICROS_PER_SEC);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    push_2(&mut out, y / 100);
    push_2(&mut out, y % 100);
    out.push('-');
    push_2(&mut out, m);
    out.push('-');
    push_2(&mut out, d);
    out.push(if form == TsForm::SqliteDefault {
        ' '
    } else {
        'T'
    });
    push_2(&mut out, sod / 3600);
    out.push(':');
    push_2(&mut out, sod / 60 % 60);
    out.push(':');
    push_2(&mut out, sod % 60);
    if form == TsForm::SqliteDefault {
        return out;
    }
    // Python's isoformat() drops the fraction entirely when microsecond == 0.
    if frac != 0 {
        out.push('.');
        push_2(&mut out, frac / 10_000);
        push_2(&mut out, frac / 100 % 100);
        push_2(&mut out, frac % 100);
    }
    if form == TsForm::Aware {
        out.push_str("+00:00");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0, as published with the
        // algorithm: pins the stream so content never silently changes.
        let mut r = Rng(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn timestamp_forms() {
        let t = micros_at(2026, 1, 17) + (10 * 3600 + 20 * 60 + 30) * MICROS_PER_SEC + 123_456;
        assert_eq!(
            timestamp(t, TsForm::Aware),
            "2026-01-17T10:20:30.123456+00:00"
        );
        assert_eq!(timestamp(t, TsForm::Naive), "2026-01-17T10:20:30.123456");
        assert_eq!(timestamp(t, TsForm::SqliteDefault), "2026-01-17 10:20:30");
        assert_eq!(timestamp(t, TsForm::Empty), "");
        let whole = t - 123_456;
        assert_eq!(timestamp(whole, TsForm::Aware), "2026-01-17T10:20:30+00:00");
        assert_eq!(
            timestamp(micros_at(2024, 2, 29) + 5, TsForm::Naive),
            "2024-02-29T00:00:00.000005"
        );
    }

    #[test]
    fn uuid_shape() {
        let mut r = Rng::derive(1, 2, 3);
        let u = uuid_v4(&mut r, false);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert!(uuid_v4(&mut r, true)
            .chars()
            .all(|c| !c.is_ascii_lowercase()));
    }
}
