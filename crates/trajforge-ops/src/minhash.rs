//! MinHash signatures and LSH banding for near-duplicate detection.
//!
//! Texts become sets of word n-gram shingles (each hashed once with xxh3-64); a signature keeps,
//! for each of `num_perm` universal hash functions `h(x) = (a·x + b) >> 32` (odd `a`, wrapping
//! 64-bit arithmetic), the smallest value over the set, so the fraction of equal positions
//! estimates the Jaccard similarity. LSH cuts signatures into `bands × rows`; rows sharing any
//! band bucket are candidates, candidates are verified by estimated Jaccard, and connected
//! components (union-find) form clusters. Rows arrive in keep order, so each cluster keeps its
//! first row; reference rows (another dataset) come first and are never kept.

use std::collections::HashMap;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Builds signatures with fixed, seeded hash functions (same seed, same signatures).
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
    ngram: usize,
}

/// SplitMix64: a tiny, well-mixed generator for the hash-function coefficients.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl MinHasher {
    pub fn new(num_perm: usize, ngram: usize, seed: u64) -> MinHasher {
        let mut state = seed;
        let a = (0..num_perm).map(|_| splitmix(&mut state) | 1).collect();
        let b = (0..num_perm).map(|_| splitmix(&mut state)).collect();
        MinHasher {
            a,
            b,
            ngram: ngram.max(1),
        }
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// Hashes of the word n-gram shingles of `words` (a single shingle when there are fewer
    /// words than `ngram`).
    pub fn shingles<'w>(&self, words: impl Iterator<Item = &'w str>) -> Vec<u64> {
        let words: Vec<u64> = words.map(|w| xxh3_64(w.as_bytes())).collect();
        if words.is_empty() {
            return Vec::new();
        }
        let n = self.ngram.min(words.len());
        words
            .windows(n)
            .map(|win| {
                win.iter().fold(0x2545_F491_4F6C_DD1D_u64, |h, &w| {
                    (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                })
            })
            .collect()
    }

    /// The signature of a shingle set; `None` for an empty set (it is near nothing).
    pub fn signature(&self, shingles: &[u64]) -> Option<Vec<u32>> {
        if shingles.is_empty() {
            return None;
        }
        let mut sig = vec![u32::MAX; self.a.len()];
        for &x in shingles {
            for ((s, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                let h = (a.wrapping_mul(x).wrapping_add(b) >> 32) as u32;
                *s = (*s).min(h);
            }
        }
        Some(sig)
    }

    /// Signature of a text's whitespace-separated words.
    pub fn signature_of_text(&self, text: &str) -> Option<Vec<u32>> {
        self.signature(&self.shingles(text.split_whitespace()))
    }
}

/// Fraction of equal positions: the MinHash estimate of Jaccard similarity.
pub fn estimated_jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len() as f64
}

/// Exact Jaccard similarity of two shingle sets (the brute-force reference).
pub fn exact_jaccard(a: &[u64], b: &[u64]) -> f64 {
    use std::collections::HashSet;
    let a: HashSet<u64> = a.iter().copied().collect();
    let b: HashSet<u64> = b.iter().copied().collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

/// Probability that two sets of similarity `s` share at least one band.
fn collision(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

fn integrate(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const STEPS: usize = 200;
    let dx = (hi - lo) / STEPS as f64;
    (0..STEPS).map(|i| f(lo + (i as f64 + 0.5) * dx) * dx).sum()
}

/// The `(bands, rows)` with `bands · rows ≤ num_perm` minimising the sum of the false-positive
/// and false-negative areas around `threshold` (the usual choice, as in datasketch).
pub fn optimal_bands(threshold: f64, num_perm: usize) -> (usize, usize) {
    let mut best = (1, num_perm.max(1));
    let mut best_err = f64::INFINITY;
    for bands in 1..=num_perm {
        for rows in 1..=num_perm / bands {
            let fp = integrate(|s| collision(s, bands, rows), 0.0, threshold);
            let fnr = integrate(|s| 1.0 - collision(s, bands, rows), threshold, 1.0);
            let err = fp + fnr;
            if err < best_err - 1e-12 {
                best_err = err;
                best = (bands, rows);
            }
        }
    }
    best
}

/// Where one row ended up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Index of the row its cluster keeps (itself when kept or alone).
    pub representative: usize,
    /// Estimated Jaccard with the representative (1.0 for itself).
    pub similarity: f64,
}

/// LSH parameters.
#[derive(Debug, Clone, Copy)]
pub struct LshParams {
    pub bands: usize,
    pub rows: usize,
    pub threshold: f64,
}

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    /// Joins two sets; the smaller index becomes the root, so a root is its set's first row.
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo;
        }
    }
}

/// Clusters signatures given in keep order (`None` rows are never near anything) and returns
/// each row's placement. The first row of every cluster represents it.
pub fn cluster(signatures: &[Option<&[u32]>], params: LshParams) -> Vec<Placement> {
    let n = signatures.len();
    let mut uf = UnionFind((0..n).collect());
    let width = params.rows.max(1);
    for band in 0..params.bands {
        let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, sig) in signatures.iter().enumerate() {
            let Some(sig) = sig else { continue };
            let Some(slice) = sig.get(band * width..(band + 1) * width) else {
                continue;
            };
            let key = xxh3_64_with_seed(bytes_of(slice).as_slice(), band as u64);
            let members = buckets.entry(key).or_default();
            for &j in members.iter() {
                if uf.find(i) != uf.find(j) {
                    let other = signatures[j].unwrap_or_default();
                    if estimated_jaccard(sig, other) >= params.threshold {
                        uf.union(i, j);
                    }
                }
            }
            members.push(i);
        }
    }
    (0..n)
        .map(|i| {
            let rep = uf.find(i);
            let similarity = match (signatures[i], signatures[rep]) {
                (Some(a), Some(b)) => estimated_jaccard(a, b),
                _ => 1.0,
            };
            Placement {
                representative: rep,
                similarity,
            }
        })
        .collect()
}

fn bytes_of(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn doc(rng: &mut ChaCha8Rng, words: usize) -> Vec<String> {
        (0..words)
            .map(|_| format!("w{}", rng.random_range(0..5000)))
            .collect()
    }

    #[test]
    fn signatures_are_deterministic_and_estimate_jaccard() {
        let mh = MinHasher::new(256, 3, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = doc(&mut rng, 400);
        let mut b = a.clone();
        for w in b.iter_mut().take(60) {
            *w = "changed".into();
        }
        let sa = mh.shingles(a.iter().map(String::as_str));
        let sb = mh.shingles(b.iter().map(String::as_str));
        let exact = exact_jaccard(&sa, &sb);
        let (ga, gb) = (mh.signature(&sa), mh.signature(&sb));
        let est = estimated_jaccard(
            ga.as_deref().unwrap_or_default(),
            gb.as_deref().unwrap_or_default(),
        );
        assert!((exact - est).abs() < 0.08, "exact {exact} est {est}");
        assert_eq!(mh.signature(&sa), MinHasher::new(256, 3, 7).signature(&sa));
    }

    #[test]
    fn empty_text_has_no_signature() {
        assert_eq!(MinHasher::new(8, 3, 0).signature_of_text("  "), None);
    }

    #[test]
    fn optimal_bands_fit_the_permutations() {
        for (t, p) in [(0.8, 128), (0.5, 64), (0.9, 256)] {
            let (b, r) = optimal_bands(t, p);
            assert!(b * r <= p && b >= 1 && r >= 1);
            // The S-curve's midpoint sits near the threshold.
            let mid = (1.0 / b as f64).powf(1.0 / r as f64);
            assert!((mid - t).abs() < 0.15, "t={t} b={b} r={r} mid={mid}");
        }
    }

    /// LSH clusters agree with brute-force exact Jaccard on seeded random documents with planted
    /// near-duplicates.
    #[test]
    fn lsh_matches_brute_force_on_planted_near_duplicates() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mh = MinHasher::new(128, 5, 3);
        let mut docs: Vec<Vec<String>> = Vec::new();
        for _ in 0..300 {
            let base = doc(&mut rng, 300);
            if rng.random_bool(0.3) && !docs.is_empty() {
                let k = rng.random_range(0..docs.len());
                let mut d = docs[k].clone();
                let i = rng.random_range(0..d.len());
                d[i] = "edit".into();
                docs.push(d);
            } else {
                docs.push(base);
            }
        }
        let shingles: Vec<Vec<u64>> = docs
            .iter()
            .map(|d| mh.shingles(d.iter().map(String::as_str)))
            .collect();
        let sigs: Vec<Option<Vec<u32>>> = shingles.iter().map(|s| mh.signature(s)).collect();
        let refs: Vec<Option<&[u32]>> = sigs.iter().map(|s| s.as_deref()).collect();
        let threshold = 0.8;
        let (bands, rows) = optimal_bands(threshold, 128);
        let placed = cluster(
            &refs,
            LshParams {
                bands,
                rows,
                threshold,
            },
        );
        let mut truth = Vec::new();
        for i in 0..docs.len() {
            let dup = (0..i).any(|j| exact_jaccard(&shingles[i], &shingles[j]) >= threshold);
            truth.push(dup);
        }
        let found: Vec<bool> = placed
            .iter()
            .enumerate()
            .map(|(i, p)| p.representative != i)
            .collect();
        let tp = found.iter().zip(&truth).filter(|(f, t)| **f && **t).count() as f64;
        let fp = found
            .iter()
            .zip(&truth)
            .filter(|(f, t)| **f && !**t)
            .count() as f64;
        let fn_ = found
            .iter()
            .zip(&truth)
            .filter(|(f, t)| !**f && **t)
            .count() as f64;
        assert!(tp > 50.0, "planted duplicates exist: {tp}");
        assert!(tp / (tp + fp) >= 0.95, "precision {tp} {fp}");
        assert!(tp / (tp + fn_) >= 0.95, "recall {tp} {fn_}");
    }

    #[test]
    fn clusters_keep_their_first_row_and_follow_transitivity() {
        let a = vec![1u32; 16];
        let mut b = a.clone();
        b[0] = 9;
        let mut c = b.clone();
        c[1] = 9;
        let other = [5u32; 16];
        let sigs = [
            Some(&a[..]),
            Some(&other[..]),
            Some(&b[..]),
            None,
            Some(&c[..]),
        ];
        let placed = cluster(
            &sigs,
            LshParams {
                bands: 8,
                rows: 2,
                threshold: 0.85,
            },
        );
        let reps: Vec<usize> = placed.iter().map(|p| p.representative).collect();
        assert_eq!(reps, [0, 1, 0, 3, 0]);
    }
}
