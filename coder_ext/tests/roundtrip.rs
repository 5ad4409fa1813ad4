//! Property tests: round trips over random tables, determinism across thread counts,
//! near-ideal size, robustness of the decoder on damaged input, and the step decoder.

use mptvc_coder::{
    decode, decode_streams, encode, encode_streams, ideal_bits, CdfTables, CoderError, StepDecoder, TOTAL,
};
use proptest::prelude::*;

/// A random bank: each table a strictly increasing CDF (escape last).
fn bank() -> impl Strategy<Value = (Vec<Vec<i32>>, Vec<i32>)> {
    bank_of(1..6)
}

/// A random bank of `n_tables` tables.
fn bank_of(n_tables: std::ops::Range<usize>) -> impl Strategy<Value = (Vec<Vec<i32>>, Vec<i32>)> {
    prop::collection::vec(
        (2usize..40, any::<u64>(), -20i32..20).prop_map(|(n_sym, seed, offset)| {
            let mut s = seed | 1;
            let mut cuts = std::collections::BTreeSet::new();
            while cuts.len() < n_sym - 1 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // Skewed draws make some frequencies tiny and some huge.
                let c = ((s >> 16) % (TOTAL as u64 - 1) + 1) as i32;
                cuts.insert(if s & 3 == 0 { c / 64 + 1 } else { c });
            }
            let mut cdf = vec![0];
            cdf.extend(cuts);
            cdf.push(TOTAL as i32);
            (cdf, offset)
        }),
        n_tables,
    )
    .prop_map(|tables| {
        let offsets = tables.iter().map(|t| t.1).collect();
        (tables.into_iter().map(|t| t.0).collect(), offsets)
    })
}

fn build(cdfs: &[Vec<i32>], offsets: &[i32]) -> CdfTables {
    let width = cdfs.iter().map(Vec::len).max().unwrap();
    let lengths: Vec<i32> = cdfs.iter().map(|c| c.len() as i32).collect();
    let flat: Vec<i32> = cdfs.iter().flat_map(|c| c.iter().copied().chain(std::iter::repeat(0)).take(width)).collect();
    CdfTables::new(&flat, width, &lengths, offsets).unwrap()
}

fn data() -> impl Strategy<Value = (Vec<Vec<i32>>, Vec<i32>, Vec<i32>, Vec<i32>)> {
    bank().prop_flat_map(|(cdfs, offsets)| {
        let n_tables = cdfs.len();
        prop::collection::vec((0..n_tables as i32, -60i32..80), 0..400).prop_map(move |pairs| {
            let (indexes, symbols) = pairs.into_iter().unzip();
            (cdfs.clone(), offsets.clone(), symbols, indexes)
        })
    })
}

/// One table per symbol (`indexes = 0..n`), as an autoregressive prior codes.
fn adaptive() -> impl Strategy<Value = (Vec<Vec<i32>>, Vec<i32>, Vec<i32>)> {
    bank_of(1..120).prop_flat_map(|(cdfs, offsets)| {
        let n = cdfs.len();
        prop::collection::vec(-60i32..80, n).prop_map(move |symbols| (cdfs.clone(), offsets.clone(), symbols))
    })
}

/// Step-decode `indexes.len()` symbols; the first error, if any.
fn step_decode(tables: &CdfTables, bytes: &[u8], indexes: &[i32]) -> Result<Vec<i32>, CoderError> {
    let mut dec = StepDecoder::new(bytes.to_vec())?;
    let out = indexes.iter().map(|&ix| dec.decode(tables, ix)).collect::<Result<Vec<_>, _>>()?;
    assert_eq!(dec.position(), indexes.len());
    dec.finish()?;
    Ok(out)
}

proptest! {
    #[test]
    fn step_decoding_with_a_table_per_symbol_matches_decode((cdfs, offsets, symbols) in adaptive()) {
        let tables = build(&cdfs, &offsets);
        let indexes: Vec<i32> = (0..symbols.len() as i32).collect();
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        prop_assert_eq!(&decode(&tables, &bytes, &indexes).unwrap(), &symbols);
        prop_assert_eq!(step_decode(&tables, &bytes, &indexes).unwrap(), symbols);
    }

    #[test]
    fn step_decoding_matches_decode((cdfs, offsets, symbols, indexes) in data()) {
        let tables = build(&cdfs, &offsets);
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        prop_assert_eq!(step_decode(&tables, &bytes, &indexes).unwrap(), symbols);
    }

    #[test]
    fn step_decoding_too_far_or_too_short_fails((cdfs, offsets, symbols, indexes) in data()) {
        let tables = build(&cdfs, &offsets);
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        let mut dec = StepDecoder::new(bytes.clone()).unwrap();
        for (i, &ix) in indexes.iter().enumerate() {
            // Stopping before the last symbol is caught by `finish`.
            prop_assert!(dec.finish().is_err(), "finish passed after {} of {} symbols", i, indexes.len());
            prop_assert_eq!(dec.decode(&tables, ix).unwrap(), symbols[i]);
        }
        dec.finish().unwrap();
        // One symbol too many: the words have run out; the failed call consumes nothing.
        let e = dec.decode(&tables, 0).unwrap_err();
        prop_assert!(matches!(e, CoderError::Truncated { .. }), "{}", e);
        prop_assert_eq!(dec.position(), indexes.len());
        dec.finish().unwrap();
    }

    #[test]
    fn every_truncation_fails_step_decoding((cdfs, offsets, symbols, indexes) in data()) {
        let tables = build(&cdfs, &offsets);
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        for cut in 0..bytes.len() {
            prop_assert!(step_decode(&tables, &bytes[..cut], &indexes).is_err(), "cut {}", cut);
        }
    }

    #[test]
    fn damaged_streams_never_panic_step_decoding((cdfs, offsets, symbols, indexes) in data(), flip in any::<(usize, u8)>(), extra in 0usize..8) {
        let tables = build(&cdfs, &offsets);
        let mut bad = encode(&tables, &symbols, &indexes).unwrap();
        let k = flip.0 % bad.len();
        bad[k] ^= flip.1 | 1;
        if let Ok(mut dec) = StepDecoder::new(bad) {
            for &ix in indexes.iter().chain(&vec![0; extra]) {
                let _ = dec.decode(&tables, ix);
            }
            let _ = dec.finish();
        }
    }

    #[test]
    fn round_trip((cdfs, offsets, symbols, indexes) in data()) {
        let tables = build(&cdfs, &offsets);
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        prop_assert_eq!(decode(&tables, &bytes, &indexes).unwrap(), symbols.clone());
        // Size: ideal plus the flushed states, the header and the padding of the escape bits.
        let ideal = ideal_bits(&tables, &symbols, &indexes).unwrap();
        prop_assert!((bytes.len() * 8) as f64 <= ideal + 8.0 * (32.0 + 10.0 + 4.0) + 8.0);
    }

    #[test]
    fn streams_are_independent_of_threads((cdfs, offsets, symbols, indexes) in data(), cut in 0usize..400) {
        let tables = build(&cdfs, &offsets);
        let cut = cut.min(symbols.len());
        let sizes = [cut, symbols.len() - cut];
        let one = encode_streams(&tables, &symbols, &indexes, &sizes, 1).unwrap();
        let two = encode_streams(&tables, &symbols, &indexes, &sizes, 2).unwrap();
        prop_assert_eq!(&one, &two);
        prop_assert_eq!(&one[0], &encode(&tables, &symbols[..cut], &indexes[..cut]).unwrap());
        let views: Vec<&[u8]> = one.iter().map(|v| v.as_slice()).collect();
        prop_assert_eq!(decode_streams(&tables, &views, &indexes, &sizes, 2).unwrap(), symbols);
    }

    #[test]
    fn damaged_streams_never_panic((cdfs, offsets, symbols, indexes) in data(), flip in any::<(usize, u8)>(), cut in any::<usize>()) {
        let tables = build(&cdfs, &offsets);
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        let mut bad = bytes.clone();
        let k = flip.0 % bad.len();
        bad[k] ^= flip.1 | 1;
        // Either an error or (rarely) some symbols; never a panic or a hang.
        let _ = decode(&tables, &bad, &indexes);
        let truncated = &bytes[..cut % bytes.len()];
        prop_assert!(decode(&tables, truncated, &indexes).is_err());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), n in 0usize..200) {
        let tables = build(&[vec![0, 100, 30000, 65535, 65536], vec![0, 65536]], &[0, 3]);
        let indexes: Vec<i32> = (0..n).map(|i| (i % 2) as i32).collect();
        let _ = decode(&tables, &bytes, &indexes);
    }
}

/// A bank that `CdfTables::new` must refuse: cdfs, row width, lengths, offsets and a
/// phrase the error must contain.
type BadBank = (Vec<i32>, usize, Vec<i32>, Vec<i32>, &'static str);

#[test]
fn invalid_input_is_a_clear_error() {
    let ok = [0, 10, 65536];
    let cases: Vec<BadBank> = vec![
        (vec![0, 10, 65535], 3, vec![3], vec![0], "ends at 65535"),
        (vec![1, 10, 65536], 3, vec![3], vec![0], "starts at 1"),
        (vec![0, 10, 10, 65536], 4, vec![4], vec![0], "not strictly increasing"),
        (ok.to_vec(), 3, vec![5], vec![0], "length 5"),
        (ok.to_vec(), 3, vec![3], vec![0, 1], "offsets has 2 entries"),
        (vec![], 0, vec![], vec![], "empty"),
    ];
    for (cdfs, width, lengths, offsets, needle) in cases {
        let e = CdfTables::new(&cdfs, width, &lengths, &offsets).unwrap_err().to_string();
        assert!(e.contains(needle) && e.ends_with('.'), "{e}");
    }
    let tables = CdfTables::new(&ok, 3, &[3], &[0]).unwrap();
    let e = encode(&tables, &[0, 0], &[0, 1]).unwrap_err();
    assert!(matches!(e, CoderError::IndexOutOfRange { position: 1, index: 1, n_tables: 1 }), "{e}");
    let e = encode(&tables, &[0, 0], &[0]).unwrap_err().to_string();
    assert!(e.contains("indexes has 1 entries but 2 were expected"), "{e}");
    let e = decode(&tables, &[], &[0]).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn step_decoder_errors_are_clear_and_consume_nothing() {
    let tables = CdfTables::new(&[0, 40000, 65535, 65536], 4, &[4], &[0]).unwrap();
    let symbols = [1, 0, 9, -4, 1];
    let bytes = encode(&tables, &symbols, &[0; 5]).unwrap();
    let mut dec = StepDecoder::new(bytes).unwrap();
    assert_eq!(dec.decode(&tables, 0).unwrap(), 1);
    for bad in [1, -1, i32::MAX] {
        let e = dec.decode(&tables, bad).unwrap_err();
        assert!(matches!(e, CoderError::IndexOutOfRange { position: 1, n_tables: 1, .. }), "{e}");
        assert!(e.to_string().ends_with('.'), "{e}");
    }
    assert_eq!(dec.position(), 1);
    let rest: Vec<i32> = (1..5).map(|_| dec.decode(&tables, 0).unwrap()).collect();
    assert_eq!(rest, symbols[1..]);
    dec.finish().unwrap();
    for data in [&[][..], &[0x80][..], &[3, 0, 0][..], &[0, 1, 2, 3, 4][..]] {
        let e = StepDecoder::new(data.to_vec()).unwrap_err().to_string();
        assert!(e.starts_with("The stream is") && e.ends_with('.'), "{e}");
    }
}

#[test]
fn decode_many_equals_step_by_step_and_a_failed_batch_consumes_nothing() {
    let tables = build(&[vec![0, 20000, 50000, 65536], vec![0, 1000, 65536]], &[0, -1]);
    let symbols: Vec<i32> = (0..97).map(|i| if i % 3 == 0 { 0 } else { (i % 3) - 1 }).collect();
    let indexes: Vec<i32> = (0..97).map(|i| if i % 3 == 0 { 1 } else { 0 }).collect();
    let data = encode(&tables, &symbols, &indexes).unwrap();
    let mut dec = StepDecoder::new(data).unwrap();
    let mut out = Vec::new();
    for part in indexes.chunks(10) {
        let mut bad = part.to_vec();
        bad.push(9); // no table 9: the batch fails and nothing is consumed
        assert!(dec.decode_many(&tables, &bad).is_err());
        out.extend(dec.decode_many(&tables, part).unwrap());
    }
    assert_eq!(out, symbols);
    assert!(dec.decode_many(&tables, &[0]).is_err());
    dec.finish().unwrap();
}
