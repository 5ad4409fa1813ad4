//! Any table bank and symbols the validator accepts must round-trip exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mptvc_coder::{decode, encode, CdfTables, TOTAL};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // Build a CDF from the first bytes: cumulative sums of (byte + 1) rescaled to 2^16.
    let n_sym = (data[0] as usize % 40) + 1;
    let raw: Vec<u32> = (0..n_sym).map(|k| *data.get(1 + k).unwrap_or(&1) as u32 + 1).collect();
    let sum: u32 = raw.iter().sum();
    let mut cdf = vec![0i32];
    let mut acc = 0u32;
    for (k, r) in raw.iter().enumerate() {
        acc += r;
        let c = if k + 1 == n_sym { TOTAL } else { (acc as u64 * TOTAL as u64 / sum as u64) as u32 };
        cdf.push(c as i32);
    }
    let Ok(tables) = CdfTables::new(&cdf, cdf.len(), &[cdf.len() as i32], &[(data[1] as i32) - 128]) else {
        return; // rounding made two entries equal: a table the contract rejects
    };
    let symbols: Vec<i32> = data[1 + n_sym.min(data.len() - 1)..].iter().map(|&b| (b as i8) as i32 * 3).collect();
    let indexes = vec![0; symbols.len()];
    let bytes = encode(&tables, &symbols, &indexes).unwrap();
    assert_eq!(decode(&tables, &bytes, &indexes).unwrap(), symbols);
});
