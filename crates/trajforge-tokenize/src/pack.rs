//! Best-fit-decreasing packing of samples into rows of at most `pack_len` tokens, streaming.
//!
//! Samples arrive in input order and wait in a look-ahead window. When the window is full it is
//! sorted longest first (ties broken by a seeded hash of the sample key, so the result depends
//! only on the inputs and the seed) and each sample goes into the open row with the least room
//! that still holds it, or into a new row. Rows that cannot take even the shortest sample seen
//! so far are emitted; the others stay open for the next window, at most `max_open` of them
//! (the emptiest are kept). Memory is the window plus the open rows, whatever the corpus size.
//! A sample is never split; one longer than `pack_len` is an error (the length policy runs
//! first).

use std::collections::BTreeSet;

use crate::TokenizeError;

/// Packing parameters.
#[derive(Debug, Clone, Copy)]
pub struct PackConfig {
    /// Capacity of a row in tokens.
    pub pack_len: u32,
    /// Samples held before a window is packed.
    pub lookahead: usize,
    /// Rows kept open between windows.
    pub max_open: usize,
    /// Breaks ties between samples of equal length.
    pub seed: u64,
}

impl PackConfig {
    pub fn new(pack_len: u32) -> PackConfig {
        PackConfig {
            pack_len,
            lookahead: 2048,
            max_open: 256,
            seed: 0,
        }
    }
}

/// One packed row: the samples it holds, in placement order, and their total length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bin<T> {
    pub items: Vec<T>,
    pub used: u32,
}

struct Pending<T> {
    len: u32,
    tie: u64,
    item: T,
}

/// The streaming packer; see the module docs.
pub struct Packer<T> {
    cfg: PackConfig,
    window: Vec<Pending<T>>,
    /// Open rows by slot; `None` once emitted.
    open: Vec<Option<Bin<T>>>,
    /// `(room, slot)` of every open row, for best-fit lookups.
    by_room: BTreeSet<(u32, usize)>,
    shortest: u32,
}

impl<T> std::fmt::Debug for Packer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("cfg", &self.cfg)
            .field("window", &self.window.len())
            .field("open", &self.by_room.len())
            .finish()
    }
}

impl<T> Packer<T> {
    pub fn new(cfg: PackConfig) -> Result<Packer<T>, TokenizeError> {
        if cfg.pack_len == 0 || cfg.lookahead == 0 {
            return Err(TokenizeError::Config(
                "pack: pack_len and lookahead must be at least 1".into(),
            ));
        }
        Ok(Packer {
            cfg,
            window: Vec::with_capacity(cfg.lookahead),
            open: Vec::new(),
            by_room: BTreeSet::new(),
            shortest: u32::MAX,
        })
    }

    /// Capacity of a row.
    pub fn pack_len(&self) -> u32 {
        self.cfg.pack_len
    }

    /// Adds a sample of `len` tokens; `key` identifies it for tie-breaks. Returns the rows
    /// completed by this call, in the order they were opened.
    pub fn push(&mut self, len: u32, key: &[u8], item: T) -> Result<Vec<Bin<T>>, TokenizeError> {
        if len == 0 || len > self.cfg.pack_len {
            return Err(TokenizeError::Data(format!(
                "pack: a sample of {len} tokens cannot go in rows of {} (run the length policy first)",
                self.cfg.pack_len
            )));
        }
        let tie = xxhash_rust::xxh3::xxh3_64_with_seed(key, self.cfg.seed);
        self.window.push(Pending { len, tie, item });
        if self.window.len() < self.cfg.lookahead {
            return Ok(Vec::new());
        }
        self.place_window();
        Ok(self.emit(false))
    }

    /// Packs what is left and returns every remaining row.
    pub fn finish(mut self) -> Vec<Bin<T>> {
        self.place_window();
        self.emit(true)
    }

    fn place_window(&mut self) {
        let mut window = std::mem::take(&mut self.window);
        window.sort_by(|a, b| b.len.cmp(&a.len).then(a.tie.cmp(&b.tie)));
        for p in window {
            self.shortest = self.shortest.min(p.len);
            self.place(p);
        }
    }

    fn place(&mut self, p: Pending<T>) {
        let fit = self.by_room.range((p.len, 0)..).next().copied();
        let slot = match fit {
            Some(key) => {
                self.by_room.remove(&key);
                key.1
            }
            None => {
                self.open.push(Some(Bin {
                    items: Vec::new(),
                    used: 0,
                }));
                self.open.len() - 1
            }
        };
        let Some(bin) = self.open[slot].as_mut() else {
            unreachable!("by_room only lists open slots");
        };
        bin.items.push(p.item);
        bin.used += p.len;
        let room = self.cfg.pack_len - bin.used;
        self.by_room.insert((room, slot));
    }

    /// Emits full rows (no room for the shortest sample seen), then the fullest beyond
    /// `max_open`; everything when `all`.
    fn emit(&mut self, all: bool) -> Vec<Bin<T>> {
        let mut closing: Vec<usize> = Vec::new();
        if all {
            closing.extend(self.by_room.iter().map(|&(_, s)| s));
        } else {
            let full: Vec<(u32, usize)> =
                self.by_room.range(..(self.shortest, 0)).copied().collect();
            closing.extend(full.iter().map(|&(_, s)| s));
            let open_left = self.by_room.len() - full.len();
            let excess = open_left.saturating_sub(self.cfg.max_open);
            let fullest = self.by_room.range((self.shortest, 0)..).take(excess);
            closing.extend(fullest.map(|&(_, s)| s));
        }
        closing.sort_unstable();
        let mut out = Vec::with_capacity(closing.len());
        for slot in closing {
            if let Some(bin) = self.open[slot].take() {
                self.by_room.remove(&(self.cfg.pack_len - bin.used, slot));
                out.push(bin);
            }
        }
        self.compact();
        out
    }

    /// Drops emitted slots so `open` does not grow with the corpus.
    fn compact(&mut self) {
        if self.open.len() < 2 * self.by_room.len() + 64 {
            return;
        }
        let bins: Vec<Bin<T>> = self.open.drain(..).flatten().collect();
        self.by_room.clear();
        for (slot, bin) in bins.into_iter().enumerate() {
            self.by_room.insert((self.cfg.pack_len - bin.used, slot));
            self.open.push(Some(bin));
        }
    }
}

/// Tokens placed / capacity of the rows.
pub fn fill(rows: usize, tokens: u64, pack_len: u32) -> f64 {
    if rows == 0 {
        return 0.0;
    }
    tokens as f64 / (rows as f64 * pack_len as f64)
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
