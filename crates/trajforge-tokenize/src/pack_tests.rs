use super::*;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn pack_all(lens: &[u32], cfg: PackConfig) -> Vec<Bin<usize>> {
    let mut p = Packer::new(cfg).expect("config");
    let mut rows = Vec::new();
    for (i, &len) in lens.iter().enumerate() {
        rows.extend(p.push(len, &i.to_le_bytes(), i).expect("fits"));
    }
    rows.extend(p.finish());
    rows
}

/// Offline best-fit-decreasing by linear scan: the reference the packer must equal when its
/// window holds the whole input.
fn naive_bfd(lens: &[u32], cfg: PackConfig) -> Vec<Bin<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    let tie = |i: usize| xxhash_rust::xxh3::xxh3_64_with_seed(&i.to_le_bytes(), cfg.seed);
    order.sort_by(|&a, &b| lens[b].cmp(&lens[a]).then(tie(a).cmp(&tie(b))));
    let mut bins: Vec<Bin<usize>> = Vec::new();
    for i in order {
        let best = (0..bins.len())
            .filter(|&b| bins[b].used + lens[i] <= cfg.pack_len)
            .min_by_key(|&b| (cfg.pack_len - bins[b].used, b));
        match best {
            Some(b) => {
                bins[b].items.push(i);
                bins[b].used += lens[i];
            }
            None => bins.push(Bin {
                items: vec![i],
                used: lens[i],
            }),
        }
    }
    bins
}

fn check_invariants(lens: &[u32], rows: &[Bin<usize>], pack_len: u32) {
    let mut seen = vec![0u32; lens.len()];
    for row in rows {
        assert!(row.used <= pack_len, "row over capacity");
        assert_eq!(row.used, row.items.iter().map(|&i| lens[i]).sum::<u32>());
        for &i in &row.items {
            seen[i] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "every sample exactly once");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_sample_once_never_over_capacity_deterministic(
        pack_len in 1u32..500,
        raw in proptest::collection::vec(1u32..1000, 0..300),
        lookahead in 1usize..64,
        max_open in 0usize..8,
        seed in any::<u64>(),
    ) {
        let lens: Vec<u32> = raw.iter().map(|l| 1 + l % pack_len).collect();
        let cfg = PackConfig { pack_len, lookahead, max_open, seed };
        let rows = pack_all(&lens, cfg);
        check_invariants(&lens, &rows, pack_len);
        prop_assert_eq!(&rows, &pack_all(&lens, cfg));
    }

    #[test]
    fn one_window_equals_offline_bfd(
        pack_len in 1u32..500,
        raw in proptest::collection::vec(1u32..1000, 0..200),
        seed in any::<u64>(),
    ) {
        let lens: Vec<u32> = raw.iter().map(|l| 1 + l % pack_len).collect();
        let cfg = PackConfig { pack_len, lookahead: lens.len() + 1, max_open: 0, seed };
        let mut streamed = pack_all(&lens, cfg);
        let mut offline = naive_bfd(&lens, cfg);
        streamed.sort_by_key(|b| b.items[0]);
        offline.sort_by_key(|b| b.items[0]);
        prop_assert_eq!(streamed, offline);
    }
}

#[test]
fn too_long_and_empty_samples_are_refused() {
    let mut p: Packer<()> = Packer::new(PackConfig::new(10)).expect("config");
    assert!(p.push(11, b"a", ()).is_err());
    assert!(p.push(0, b"b", ()).is_err());
    assert!(Packer::<()>::new(PackConfig::new(0)).is_err());
}

/// Trajectory-like lengths (log-uniform 1k–30k tokens) at 32k: the bounded window loses
/// little against packing the whole corpus at once.
#[test]
fn streaming_fill_is_close_to_offline_fill() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let lens: Vec<u32> = (0..20_000)
        .map(|_| (1000f64 * 30f64.powf(rng.random::<f64>())) as u32)
        .collect();
    let tokens: u64 = lens.iter().map(|&l| l as u64).sum();
    let cfg = PackConfig::new(32_768);
    let streamed = pack_all(&lens, cfg);
    check_invariants(&lens, &streamed, cfg.pack_len);
    let offline = naive_bfd(&lens[..4000], cfg);
    let offline_tokens: u64 = lens[..4000].iter().map(|&l| l as u64).sum();
    let f_stream = fill(streamed.len(), tokens, cfg.pack_len);
    let f_off = fill(offline.len(), offline_tokens, cfg.pack_len);
    assert!(f_stream > 0.99, "streaming fill {f_stream}");
    assert!(
        f_stream > f_off - 0.01,
        "streaming {f_stream} vs offline {f_off}"
    );
}
