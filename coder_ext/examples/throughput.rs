//! Quick single-thread throughput check on FSQ-like workloads (the real benchmark is
//! `benchmarks/coder_bench.py`): `cargo run --release --example throughput`.

use std::time::Instant;

use mptvc_coder::{decode_into, encode, ideal_bits, CdfTables, TOTAL};

fn erf_cdf(z: f64) -> f64 {
    // Abramowitz-Stegun 7.1.26 is enough for a synthetic workload.
    let t = 1.0 / (1.0 + 0.3275911 * z.abs() / std::f64::consts::SQRT_2);
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592)
            * t
            * (-(z * z) / 2.0).exp();
    0.5 * (1.0 + if z >= 0.0 { y } else { -y })
}

fn main() {
    let n = 8_000_000usize;
    for (name, alphabet, n_scales, n_means) in [("fsq8 x 64", 8i32, 64usize, 1usize), ("fsq10 x 2048", 10, 64, 32)] {
        let lo = -alphabet / 2;
        let mut flat = Vec::new();
        let mut rows = Vec::new();
        for si in 0..n_scales {
            for mi in 0..n_means {
                let scale = (0.3f64.ln() + (8.0f64 / 0.3).ln() * si as f64 / (n_scales - 1) as f64).exp();
                let mean = if n_means == 1 {
                    0.0
                } else {
                    lo as f64 + (alphabet - 1) as f64 * mi as f64 / (n_means - 1) as f64
                };
                let pmf: Vec<f64> = (lo..lo + alphabet)
                    .map(|v| erf_cdf((v as f64 + 0.5 - mean) / scale) - erf_cdf((v as f64 - 0.5 - mean) / scale))
                    .collect();
                let sum: f64 = pmf.iter().sum();
                let budget = (TOTAL - 1 - alphabet as u32) as f64;
                let mut freq: Vec<u32> = pmf.iter().map(|p| 1 + (p / sum * budget) as u32).collect();
                let rest = TOTAL - 1 - freq.iter().sum::<u32>();
                let argmax = (0..freq.len()).max_by_key(|&k| freq[k]).unwrap();
                freq[argmax] += rest;
                freq.push(1);
                let mut cdf = vec![0i32];
                for f in freq {
                    cdf.push(cdf.last().unwrap() + f as i32);
                }
                rows.push(cdf);
            }
        }
        let width = rows[0].len();
        for r in &rows {
            flat.extend_from_slice(r);
        }
        let n_tables = rows.len();
        let tables = CdfTables::new(&flat, width, &vec![width as i32; n_tables], &vec![lo; n_tables]).unwrap();
        let mut s = 0x243F6A8885A308D3u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let indexes: Vec<i32> = (0..n).map(|_| (next() % n_tables as u64) as i32).collect();
        let symbols: Vec<i32> = indexes
            .iter()
            .map(|&t| {
                let u = (next() % TOTAL as u64) as i32;
                let row = &rows[t as usize];
                (row.iter().take(width - 2).rposition(|&c| c <= u).unwrap() as i32 + lo).min(lo + alphabet - 1)
            })
            .collect();
        let mut out = vec![0i32; n];
        let (mut best_e, mut best_d) = (f64::MAX, f64::MAX);
        let mut bytes = Vec::new();
        for _ in 0..7 {
            let t0 = Instant::now();
            bytes = encode(&tables, &symbols, &indexes).unwrap();
            let t1 = Instant::now();
            decode_into(&tables, &bytes, &indexes, &mut out).unwrap();
            let t2 = Instant::now();
            best_e = best_e.min((t1 - t0).as_secs_f64());
            best_d = best_d.min((t2 - t1).as_secs_f64());
        }
        assert_eq!(out, symbols);
        let ideal = ideal_bits(&tables, &symbols, &indexes).unwrap();
        println!(
            "{name}: encode {:.1} Msym/s, decode {:.1} Msym/s (best of 7), overhead {:+.4}%",
            n as f64 / best_e / 1e6,
            n as f64 / best_d / 1e6,
            100.0 * (bytes.len() as f64 * 8.0 / ideal - 1.0)
        );
    }
}
