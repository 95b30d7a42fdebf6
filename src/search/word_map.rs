//! A map from words (byte strings), for what a backend remembers of the
//! dictionaries' answers while it parses documents.
//!
//! Nearly every word is short. A word of up to 23 bytes is kept inline in
//! its key, so that finding it compares three machine words in the table
//! itself; a boxed key would send each lookup to a separate allocation,
//! and among the many thousand words a backend remembers that is a cache
//! miss for every word of every document parsed. Longer words are boxed.
//!
//! foldhash: a backend's own words need no protection from crafted
//! collisions more than its own memory does.

use std::collections::HashMap;

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
        let mut words = [0u64; 3];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(chunk);
            *word = u64::from_ne_bytes(eight);
        }
        Some(Inline(words))
    }
}

pub struct WordMap<T> {
    short: HashMap<Inline, T, State>,
    long: HashMap<Box<[u8]>, T, State>,
}

impl<T> Default for WordMap<T> {
    fn default() -> Self {
        WordMap {
            short: HashMap::default(),
            long: HashMap::default(),
        }
    }
}

impl<T> WordMap<T> {
    pub fn get(&self, word: &[u8]) -> Option<&T> {
        match Inline::of(word) {
            Some(key) => self.short.get(&key),
            None => self.long.get(word),
        }
    }

    pub fn insert(&mut self, word: &[u8], value: T) {
        match Inline::of(word) {
            Some(key) => {
                self.short.insert(key, value);
            }
            None => {
                self.long.insert(word.into(), value);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.long.len()
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
}
