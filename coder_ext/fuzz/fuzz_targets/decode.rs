//! Decoding arbitrary bytes must return an error or symbols, never panic or hang; the
//! step-by-step decoder must agree with the batch decoder on every input (same symbols
//! where both succeed, and it succeeds, `finish` included, exactly when the batch one does).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mptvc_coder::{decode, decode_streams, CdfTables, StepDecoder};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // Two tables: a skewed 6-symbol one (escape last) and one that is only the escape.
    let tables =
        CdfTables::new(&[0, 3, 30000, 50000, 65000, 65534, 65536, 0, 65536, 0, 0, 0, 0, 0], 7, &[7, 2], &[-2, 5])
            .unwrap();
    let n = data[0] as usize * 4 + (data[1] as usize & 3);
    let indexes: Vec<i32> = (0..n).map(|i| ((i * 7 + data[1] as usize) % 3 == 0) as i32).collect();
    let stream = &data[2..];
    let batch = decode(&tables, stream, &indexes);
    let stepped = StepDecoder::new(stream.to_vec()).and_then(|mut dec| {
        let symbols = indexes.iter().map(|&ix| dec.decode(&tables, ix)).collect::<Result<Vec<i32>, _>>()?;
        dec.finish().map(|_| symbols)
    });
    match (&batch, &stepped) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the step decoder disagrees with decode"),
        (Err(_), Err(_)) => {}
        _ => panic!("decode and the step decoder disagree on success: {:?} vs {:?}", batch.is_ok(), stepped.is_ok()),
    }
    let half = stream.len() / 2;
    let _ = decode_streams(&tables, &[&stream[..half], &stream[half..]], &indexes, &[n / 2, n - n / 2], 1);
});
