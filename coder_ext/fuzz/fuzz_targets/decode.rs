//! Decoding arbitrary bytes must return an error or symbols, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mptvc_coder::{decode, decode_streams, CdfTables};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Two tables: a skewed 6-symbol one (escape last) and one that is only the escape.
    let tables = CdfTables::new(&[0, 3, 30000, 50000, 65000, 65534, 65536, 0, 65536, 0, 0, 0, 0, 0], 7, &[7, 2], &[-2, 5])
        .unwrap();
    let n = data[0] as usize * 4 + (data[1] as usize & 3);
    let indexes: Vec<i32> = (0..n).map(|i| ((i * 7 + data[1] as usize) % 3 == 0) as i32).collect();
    let stream = &data[2..];
    let _ = decode(&tables, stream, &indexes);
    let half = stream.len() / 2;
    let _ = decode_streams(&tables, &[&stream[..half], &stream[half..]], &indexes, &[n / 2, n - n / 2], 1);
});
