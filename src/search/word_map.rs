//! A map from words (byte strings), for what a backend remembers of the
//! dictionaries' answers while it parses documents.
//!
//! Nearly every word is short. A word of up to 23 bytes is kept inline in
//! its slot, so that finding it compares three machine words in the table
//! itself; a boxed key would send each lookup to a separate allocation.
//! Longer words are boxed, in a standard map.
//!
//! The short words' table is our own, open addressing with linear probing:
//! among the many thousand words a backend remembers, finding a word is a
//! cache miss on its slot, and most of a parse was spent waiting on it. A
//! caller that knows the next words asks for their slots early
//! ([`WordMap::prefetch_in`]), which needs the slot's address before the
//! lookup, and no standard map gives it.
//!
//! foldhash: a backend's own words need no protection from crafted
//! collisions more than its own memory does.

use std::collections::HashMap;
use std::hash::BuildHasher;

type State = foldhash::fast::RandomState;

/// The longest word kept inline: the last of the key's 24 bytes holds the
/// length, so "ab" and "ab\0" differ.
const INLINE: usize = 23;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Inline([u64; 3]);

impl Inline {
    fn of(word: &[u8]) -> Option<Inline> {
        if word.len() > INLINE {
            return None;
        }
        let mut bytes = [0u8; INLINE + 1];
        bytes[..word.len()].copy_from_slice(word);
        bytes[INLINE] = u8::try_from(word.len()).ok()?;
        let (chunks, _) = bytes.as_chunks::<8>();
        let mut words = [0u64; 3];
        for (word, chunk) in words.iter_mut().zip(chunks) {
            *word = u64::from_le_bytes(*chunk);
        }
        Some(Inline(words))
    }

    /// The key of `text[start..start + len]`, the same as [`Inline::of`]
    /// makes. Where 24 bytes from `start` lie inside `text`, they are read
    /// as three machine words and the bytes past the word masked off: the
    /// key is not copied byte by byte into memory and read back as words,
    /// which stalls the load on the stores before it.
    fn of_in(text: &[u8], start: usize, len: usize) -> Option<Inline> {
        if len > INLINE {
            return None;
        }
        let Some(bytes) = text
            .get(start..)
            .and_then(<[u8]>::first_chunk::<{ INLINE + 1 }>)
        else {
            return Inline::of(text.get(start..start + len)?);
        };
        let (chunks, _) = bytes.as_chunks::<8>();
        let mut words = [0u64; 3];
        for (k, (word, chunk)) in words.iter_mut().zip(chunks).enumerate() {
            let kept = len.saturating_sub(8 * k).min(8);
            let mask = if kept == 8 {
                u64::MAX
            } else {
                (1u64 << (8 * kept)) - 1
            };
            *word = u64::from_le_bytes(*chunk) & mask;
        }
        words[2] |= (len as u64) << 56;
        Some(Inline(words))
    }
}

/// A slot no word fills: a real key's last byte is its length, 23 at most.
const EMPTY: Inline = Inline([0, 0, u64::MAX]);

/// The short words: a power-of-two table at most three quarters full, so
/// that a probe meets an empty slot soon and a word is most often in the
/// slot it probes first or the one beside it, in the same cache line.
struct Short<T> {
    slots: Vec<(Inline, T)>,
    len: usize,
    state: State,
}

impl<T: Copy + Default> Short<T> {
    fn home(&self, key: &Inline) -> usize {
        // the table is never empty here: a hash's low bits index it
        (self.state.hash_one(key) as usize) & (self.slots.len() - 1)
    }

    fn get(&self, key: &Inline) -> Option<&T> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(key);
        loop {
            let (slot, value) = &self.slots[at];
            if slot == key {
                return Some(value);
            }
            if *slot == EMPTY {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    fn insert(&mut self, key: Inline, value: T) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = self.home(&key);
        loop {
            let slot = &mut self.slots[at];
            if slot.0 == key {
                slot.1 = value;
                return;
            }
            if slot.0 == EMPTY {
                *slot = (key, value);
                self.len += 1;
                return;
            }
            at = (at + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![(EMPTY, T::default()); capacity]);
        self.len = 0;
        for (key, value) in old {
            if key != EMPTY {
                self.insert(key, value);
            }
        }
    }

    fn prefetch(&self, key: &Inline) {
        if !self.slots.is_empty() {
            prefetch_index::prefetch_index(&self.slots, self.home(key));
        }
    }
}

pub struct WordMap<T> {
    short: Short<T>,
    long: HashMap<Box<[u8]>, T, State>,
}

impl<T> Default for WordMap<T> {
    fn default() -> Self {
        WordMap {
            short: Short {
                slots: Vec::new(),
                len: 0,
                state: State::default(),
            },
            long: HashMap::default(),
        }
    }
}

impl<T: Copy + Default> WordMap<T> {
    pub fn get(&self, word: &[u8]) -> Option<&T> {
        match Inline::of(word) {
            Some(key) => self.short.get(&key),
            None => self.long.get(word),
        }
    }

    /// [`WordMap::get`] of `text[start..start + len]`.
    pub fn get_in(&self, text: &[u8], start: usize, len: usize) -> Option<&T> {
        match Inline::of_in(text, start, len) {
            Some(key) => self.short.get(&key),
            None => self.long.get(text.get(start..start + len)?),
        }
    }

    /// Asks the processor to bring in the slot of `text[start..start +
    /// len]`, for a [`WordMap::get_in`] of it a few words later.
    pub fn prefetch_in(&self, text: &[u8], start: usize, len: usize) {
        if let Some(key) = Inline::of_in(text, start, len) {
            self.short.prefetch(&key);
        }
    }

    pub fn insert(&mut self, word: &[u8], value: T) {
        match Inline::of(word) {
            Some(key) => self.short.insert(key, value),
            None => {
                self.long.insert(word.into(), value);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.short.len + self.long.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_every_length_are_found_as_they_were_put() {
        let mut map = WordMap::default();
        let words: Vec<Vec<u8>> = (0..=40)
            .map(|len| {
                b"abcdefghijklmnopqrstuvwxyz"
                    .iter()
                    .cycle()
                    .take(len)
                    .copied()
                    .collect()
            })
            .collect();
        for (n, word) in words.iter().enumerate() {
            map.insert(word, n);
        }
        assert_eq!(map.len(), words.len());
        for (n, word) in words.iter().enumerate() {
            assert_eq!(map.get(word), Some(&n), "{} bytes", word.len());
        }
        // A trailing NUL, or one byte more or less, is another word.
        assert_eq!(map.get(b"ab\0"), None);
        assert_eq!(map.get(&[b'a'; 24]), None);
        map.insert(b"ab", 100);
        assert_eq!(map.get(b"ab"), Some(&100));
        assert_eq!(map.len(), words.len());
    }

    #[test]
    fn a_word_read_in_its_text_is_the_word_put() {
        let text = "the quick brown fox jumps over the lazy dog, très vite; \
                    averyveryverylongwordofmorethantwentythreebytes end"
            .as_bytes();
        let mut map = WordMap::default();
        let mut n = 0;
        // every slice of the text, including those that end at its end,
        // where fewer than 24 bytes follow the start
        for start in 0..=text.len() {
            for len in 0..=(text.len() - start).min(40) {
                map.insert(&text[start..start + len], n);
                assert_eq!(map.get_in(text, start, len), Some(&n), "{start}+{len}");
                n += 1;
            }
        }
        for start in 0..=text.len() {
            for len in 0..=(text.len() - start).min(40) {
                let word = &text[start..start + len];
                assert_eq!(map.get_in(text, start, len), map.get(word), "{start}+{len}");
            }
        }
        assert_eq!(map.get_in(text, text.len(), 1), None);
        assert_eq!(map.get_in(text, text.len() + 1, 0), None);
    }

    #[test]
    fn every_word_is_found_after_the_table_grows() {
        let mut map = WordMap::default();
        let word = |n: u32| format!("w{n}").into_bytes();
        for n in 0..50_000 {
            map.insert(&word(n), n);
            map.prefetch_in(&word(n), 0, word(n).len());
        }
        assert_eq!(map.len(), 50_000);
        for n in 0..50_000 {
            assert_eq!(map.get(&word(n)), Some(&n));
        }
        for n in 50_000..60_000 {
            assert_eq!(map.get(&word(n)), None);
        }
        // a word put again keeps one slot, with its new value
        map.insert(b"w7", 7_000_000);
        assert_eq!(map.get(b"w7"), Some(&7_000_000));
        assert_eq!(map.len(), 50_000);
        // and the map that was never written finds nothing
        assert_eq!(WordMap::<u32>::default().get(b"w1"), None);
        WordMap::<u32>::default().prefetch_in(b"w1", 0, 2);
    }
}
