//! The allocation bitmap (`allocator/bitmap.go`) with its random scan strategy split by an
//! offset (`randomScanStrategyWithOffset`).
//!
//! Bit `i` set means item `i` is taken. Items `[0, offset)` are the static band and
//! `[offset, max)` the dynamic one. Dynamic allocation starts at a random item of the upper
//! band and takes the first free one after it, wrapping inside the band; once the upper band is
//! full it does the same in the static band. Upstream tests bit by bit; this scans whole
//! words, finding the free bit of a word with `trailing_zeros`, and keeps a second level with a
//! bit per word, set when the word is full, so full words are skipped 64 at a time: a search
//! over 2^20 items reads at most 256 summary words. It also counts the upper band's taken items,
//! so a full upper band is skipped without a scan.

use rand::Rng;
use rand::rngs::SmallRng;
use std::fmt;

const WORD: usize = u64::BITS as usize;

#[derive(Clone)]
pub(super) struct Bitmap {
    words: Vec<u64>,
    /// Bit `w` set when `words[w]` is full.
    full: Vec<u64>,
    /// Number of items.
    max: usize,
    /// Size of the static band, the first items.
    offset: usize,
    /// Taken items.
    count: usize,
    /// Taken items in the dynamic band, `[offset, max)`.
    upper_count: usize,
    rng: SmallRng,
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bitmap")
            .field("max", &self.max)
            .field("offset", &self.offset)
            .field("count", &self.count)
            .field("upper_count", &self.upper_count)
            .finish_non_exhaustive()
    }
}

impl Bitmap {
    /// A bitmap of `max` free items whose first `offset` form the static band. An offset of
    /// `max` or more is taken as no static band, as upstream only computes offsets smaller than
    /// the range.
    pub(super) fn new(max: usize, offset: usize, rng: SmallRng) -> Self {
        let offset = if offset >= max { 0 } else { offset };
        let words = max.div_ceil(WORD);
        Bitmap {
            words: vec![0; words],
            full: vec![0; words.div_ceil(WORD)],
            max,
            offset,
            count: 0,
            upper_count: 0,
            rng,
        }
    }

    pub(super) fn max(&self) -> usize {
        self.max
    }

    #[cfg(test)]
    pub(super) fn offset(&self) -> usize {
        self.offset
    }

    pub(super) fn count(&self) -> usize {
        self.count
    }

    pub(super) fn has(&self, item: usize) -> bool {
        item < self.max && self.words[item / WORD] & bit(item) != 0
    }

    /// Takes `item`; false if it was already taken. `item` must be below `max`.
    pub(super) fn allocate(&mut self, item: usize) -> bool {
        assert!(item < self.max, "item {item} out of range [0,{})", self.max);
        if self.has(item) {
            return false;
        }
        self.set(item);
        true
    }

    /// Takes a free item: from the upper band first, at a random start, else from the static
    /// band. None when every item is taken.
    pub(super) fn allocate_next(&mut self) -> Option<usize> {
        if self.count >= self.max {
            return None;
        }
        let upper = self.max - self.offset;
        let mut found = None;
        if self.upper_count < upper {
            let start = self.offset + self.rng.random_range(0..upper);
            found = self.scan(self.offset, self.max, start);
        }
        if found.is_none() && self.offset > 0 {
            let start = self.rng.random_range(0..self.offset);
            found = self.scan(0, self.offset, start);
        }
        let item = found?;
        self.set(item);
        Some(item)
    }

    /// Frees `item`; false if it was not taken (or is out of range).
    pub(super) fn release(&mut self, item: usize) -> bool {
        if !self.has(item) {
            return false;
        }
        self.words[item / WORD] &= !bit(item);
        self.full[item / WORD / WORD] &= !bit(item / WORD);
        self.count -= 1;
        if item >= self.offset {
            self.upper_count -= 1;
        }
        true
    }

    /// The taken items, in ascending order.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(index, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let b = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(index * WORD + b)
            })
        })
    }

    fn set(&mut self, item: usize) {
        let word = item / WORD;
        self.words[word] |= bit(item);
        if self.words[word] == u64::MAX {
            self.full[word / WORD] |= bit(word);
        }
        self.count += 1;
        if item >= self.offset {
            self.upper_count += 1;
        }
    }

    /// The first free item in `[start, hi)`, else in `[lo, start)`.
    fn scan(&self, lo: usize, hi: usize, start: usize) -> Option<usize> {
        self.first_free(start, hi).or_else(|| self.first_free(lo, start))
    }

    /// The first free item in `[from, to)`: in the word of `from`, else in the first word
    /// between that is not full, else in the word of `to - 1`.
    fn first_free(&self, from: usize, to: usize) -> Option<usize> {
        if from >= to {
            return None;
        }
        let (first, last) = (from / WORD, (to - 1) / WORD);
        if let Some(item) = first_zero(&self.words, from, to.min((first + 1) * WORD)) {
            return Some(item);
        }
        if first == last {
            return None;
        }
        if let Some(word) = first_zero(&self.full, first + 1, last) {
            return Some(word * WORD + (!self.words[word]).trailing_zeros() as usize);
        }
        first_zero(&self.words, last * WORD, to)
    }
}

/// The first clear bit in `[from, to)` of `words`, scanning word by word.
fn first_zero(words: &[u64], from: usize, to: usize) -> Option<usize> {
    if from >= to {
        return None;
    }
    let (first, last) = (from / WORD, (to - 1) / WORD);
    for (index, &word) in words.iter().enumerate().take(last + 1).skip(first) {
        let mut taken = word;
        if index == first {
            // Bits below `from` count as taken.
            taken |= bit(from) - 1;
        }
        if index == last {
            // So do bits from `to` on.
            let end = to - index * WORD;
            if end < WORD {
                taken |= u64::MAX << end;
            }
        }
        if taken != u64::MAX {
            return Some(index * WORD + (!taken).trailing_zeros() as usize);
        }
    }
    None
}

fn bit(item: usize) -> u64 {
    1 << (item % WORD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn bitmap(max: usize, offset: usize) -> Bitmap {
        Bitmap::new(max, offset, SmallRng::seed_from_u64(7))
    }

    #[test]
    fn allocate_next_hands_out_every_item_once_then_none() {
        for (max, offset) in [(1, 0), (63, 0), (64, 16), (65, 16), (130, 16), (1000, 62), (4096, 256)] {
            let mut b = bitmap(max, offset);
            let mut seen = vec![false; max];
            for _ in 0..max {
                let item = b.allocate_next().expect("a free item");
                assert!(!seen[item], "item {item} handed out twice (max {max})");
                seen[item] = true;
            }
            assert_eq!(b.allocate_next(), None);
            assert_eq!(b.count(), max);
            assert!(b.iter().eq(0..max));
        }
    }

    #[test]
    fn the_upper_band_is_used_before_the_static_band() {
        let mut b = bitmap(1000, 100);
        for _ in 0..900 {
            assert!(b.allocate_next().unwrap() >= 100);
        }
        for _ in 0..100 {
            assert!(b.allocate_next().unwrap() < 100);
        }
        assert_eq!(b.allocate_next(), None);
    }

    #[test]
    fn first_free_respects_both_bounds_inside_one_word() {
        let mut b = bitmap(128, 0);
        for item in 0..128 {
            if !(10..=12).contains(&item) && item != 100 {
                b.allocate(item);
            }
        }
        assert_eq!(b.first_free(0, 128), Some(10));
        assert_eq!(b.first_free(11, 12), Some(11));
        assert_eq!(b.first_free(13, 100), None);
        assert_eq!(b.first_free(13, 101), Some(100));
        assert_eq!(b.first_free(12, 12), None);
        assert_eq!(b.scan(0, 128, 101), Some(10));
    }

    #[test]
    fn full_words_are_skipped_through_the_summary_and_found_again_when_freed() {
        let max = 64 * 64 * 3 + 5;
        let mut b = bitmap(max, 0);
        for item in 0..max {
            b.allocate(item);
        }
        assert!(b.full.iter().take(2).all(|&w| w == u64::MAX));
        for item in [0, 63, 64, 4095, 4096, 9000, max - 1] {
            assert!(b.release(item));
            assert_eq!(b.first_free(0, max), Some(item));
            assert_eq!(b.first_free(item, item + 1), Some(item));
            assert_eq!(b.first_free(item + 1, max), None);
            if item > 0 {
                assert_eq!(b.first_free(0, item), None);
            }
            assert_eq!(b.scan(0, max, (item + 1) % max), Some(item));
            assert!(b.allocate(item));
        }
        assert_eq!(b.allocate_next(), None);
    }

    #[test]
    fn searches_agree_with_a_naive_scan_after_random_changes() {
        use rand::Rng;
        let mut rng = SmallRng::seed_from_u64(11);
        for max in [1, 64, 100, 4096, 4097, 20_000] {
            let mut b = bitmap(max, max / 10);
            for _ in 0..3000 {
                let item = rng.random_range(0..max);
                // Mostly fill, so long taken runs and full summary words appear.
                if rng.random_bool(0.8) {
                    b.allocate(item);
                } else {
                    b.release(item);
                }
                let (from, to) = (rng.random_range(0..=max), rng.random_range(0..=max));
                assert_eq!(b.first_free(from, to), (from..to).find(|&i| !b.has(i)), "max {max} [{from},{to})");
            }
            for (w, &word) in b.words.iter().enumerate() {
                assert_eq!(b.full[w / WORD] & bit(w) != 0, word == u64::MAX, "summary of word {w}");
            }
            assert_eq!(b.count(), b.iter().count());
            assert_eq!(b.upper_count, b.iter().filter(|&i| i >= b.offset).count());
        }
    }

    #[test]
    fn release_frees_only_taken_items() {
        let mut b = bitmap(70, 16);
        assert!(b.allocate(69));
        assert!(!b.allocate(69));
        assert!(b.release(69));
        assert!(!b.release(69));
        assert!(!b.release(70));
        assert_eq!((b.count(), b.upper_count), (0, 0));
    }

    #[test]
    fn an_offset_as_large_as_the_range_means_no_static_band() {
        assert_eq!(bitmap(16, 16).offset(), 0);
        assert_eq!(bitmap(0, 0).allocate_next(), None);
    }
}
