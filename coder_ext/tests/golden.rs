//! Exact bytes: the Rust coder must reproduce the streams written by the independent
//! Python reference (`tests/coder_reference.py`), which pytest checks too.

use mptvc_coder::{decode, encode, ideal_bits, CdfTables, StepDecoder};
use serde_json::Value;

fn ints(v: &Value) -> Vec<i32> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i32).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn golden_streams_match_byte_for_byte() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/coder/golden.json");
    let text = std::fs::read_to_string(path).expect("golden fixtures are missing");
    let root: Value = serde_json::from_str(&text).unwrap();
    let cases = root["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let rows: Vec<Vec<i32>> = case["cdfs"].as_array().unwrap().iter().map(ints).collect();
        let width = rows[0].len();
        let flat: Vec<i32> = rows.concat();
        let tables = CdfTables::new(&flat, width, &ints(&case["cdf_lengths"]), &ints(&case["offsets"])).unwrap();
        let (symbols, indexes) = (ints(&case["symbols"]), ints(&case["indexes"]));
        let bytes = encode(&tables, &symbols, &indexes).unwrap();
        assert_eq!(hex(&bytes), case["encoded_hex"].as_str().unwrap(), "case {name}");
        assert_eq!(decode(&tables, &bytes, &indexes).unwrap(), symbols, "case {name}");
        let mut step = StepDecoder::new(bytes.clone()).unwrap();
        let stepped: Vec<i32> = indexes.iter().map(|&ix| step.decode(&tables, ix).unwrap()).collect();
        assert_eq!(stepped, symbols, "case {name}, step by step");
        step.finish().unwrap();
        let ideal = ideal_bits(&tables, &symbols, &indexes).unwrap();
        let want = case["ideal_bits"].as_f64().unwrap();
        assert!((ideal - want).abs() <= 1e-9 * want.max(1.0), "case {name}: {ideal} vs {want}");
    }
}
