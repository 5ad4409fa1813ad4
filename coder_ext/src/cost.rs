//! Ideal code lengths under the integer tables: the yardstick of the coder's overhead and,
//! through the Python bindings, the exact rate term of training.
//!
//! A value coded as symbol `s` of its table costs `PRECISION - log2(freq_s)` bits. A value
//! outside the table's range is coded as the escape symbol, whose own frequency counts the
//! same way, plus its payload: the Elias-gamma code of the zig-zag magnitude `raw`,
//! `2 floor(log2(raw + 1)) + 1` bits (see `escape`). The coder's streams add only the
//! flushed states, the header and the padding of the payload to this.

use crate::error::{CoderError, Result};
use crate::escape::gamma_len;
use crate::tables::{CdfTables, PRECISION};

/// Bits of a table symbol of frequency `freq` (`1..=TOTAL`).
#[inline]
pub fn freq_bits(freq: u32) -> f64 {
    PRECISION as f64 - (freq as f64).log2()
}

/// Ideal cost of a run of values, split into what the tables and the escape payloads spend.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IdealCost {
    /// `PRECISION - log2(freq)` summed over the coded table symbols, escapes included.
    pub table_bits: f64,
    /// Values that fell outside their table's range.
    pub n_escapes: u64,
    /// Elias-gamma bits of the escape payloads.
    pub escape_bits: u64,
}

impl IdealCost {
    /// Table bits plus escape payload bits.
    pub fn total_bits(&self) -> f64 {
        self.table_bits + self.escape_bits as f64
    }
}

/// Table bits and escape payload bits (0 when in range) of `symbol` coded with table `index`.
#[inline]
fn value_cost(tables: &CdfTables, position: usize, symbol: i32, index: i32) -> Result<(f64, Option<u32>)> {
    let meta = tables.meta_at(position, index)?;
    let (s, raw) = meta.symbol_of(symbol);
    Ok((freq_bits(tables.dec_symbol(meta, s).freq()), raw.map(gamma_len)))
}

fn check_lengths(symbols: &[i32], indexes: &[i32]) -> Result<()> {
    if symbols.len() != indexes.len() {
        return Err(CoderError::LengthMismatch { what: "indexes", expected: symbols.len(), got: indexes.len() });
    }
    Ok(())
}

/// Ideal cost of coding `symbols[i]` with table `indexes[i]`.
pub fn ideal_cost(tables: &CdfTables, symbols: &[i32], indexes: &[i32]) -> Result<IdealCost> {
    check_lengths(symbols, indexes)?;
    let mut cost = IdealCost::default();
    for (i, (&symbol, &index)) in symbols.iter().zip(indexes).enumerate() {
        let (bits, payload) = value_cost(tables, i, symbol, index)?;
        cost.table_bits += bits;
        if let Some(payload) = payload {
            cost.n_escapes += 1;
            cost.escape_bits += payload as u64;
        }
    }
    Ok(cost)
}

/// Ideal cost in bits of `symbols` under the tables, escape payloads included.
pub fn ideal_bits(tables: &CdfTables, symbols: &[i32], indexes: &[i32]) -> Result<f64> {
    ideal_cost(tables, symbols, indexes).map(|c| c.total_bits())
}

/// Ideal cost in bits of each value on its own, escape payload included, into `out`.
pub fn symbol_bits_into(tables: &CdfTables, symbols: &[i32], indexes: &[i32], out: &mut [f64]) -> Result<()> {
    check_lengths(symbols, indexes)?;
    if out.len() != symbols.len() {
        return Err(CoderError::LengthMismatch { what: "output", expected: symbols.len(), got: out.len() });
    }
    for (i, ((&symbol, &index), o)) in symbols.iter().zip(indexes).zip(out.iter_mut()).enumerate() {
        let (bits, payload) = value_cost(tables, i, symbol, index)?;
        *o = bits + payload.unwrap_or(0) as f64;
    }
    Ok(())
}

/// Bits of every symbol of table `t`, the escape last (without a payload); `t < tables.len()`.
pub fn table_bits(tables: &CdfTables, t: usize) -> Vec<f64> {
    tables.cdf(t).windows(2).map(|w| freq_bits(w[1] - w[0])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> CdfTables {
        // Table 0: values 0, 1 (offset -1: -1, 0) and the escape; table 1: only the escape.
        CdfTables::new(&[0, 16384, 65535, 65536, 0, 65536, 0, 0], 4, &[4, 2], &[-1, 7]).unwrap()
    }

    #[test]
    fn costs_count_table_bits_and_gamma_payloads() {
        let tables = bank();
        // -1: 2 bits. 0: log2(65536 / 49151). 1 (raw 0): 16 + 1. -3 (raw 3): 16 + 5. 7 in table 1 (raw 0): 0 + 1.
        let (symbols, indexes) = ([-1, 0, 1, -3, 7], [0, 0, 0, 0, 1]);
        let want = [2.0, freq_bits(49151), 17.0, 21.0, 1.0];
        let mut out = [0.0; 5];
        symbol_bits_into(&tables, &symbols, &indexes, &mut out).unwrap();
        for (got, want) in out.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{out:?}");
        }
        let cost = ideal_cost(&tables, &symbols, &indexes).unwrap();
        assert_eq!((cost.n_escapes, cost.escape_bits), (3, 7));
        assert!((cost.total_bits() - want.iter().sum::<f64>()).abs() < 1e-9);
        assert_eq!(table_bits(&tables, 0), vec![2.0, freq_bits(49151), 16.0]);
        assert_eq!(table_bits(&tables, 1), vec![0.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        let tables = bank();
        let e = ideal_cost(&tables, &[0, 0], &[0, 2]).unwrap_err();
        assert!(matches!(e, CoderError::IndexOutOfRange { position: 1, index: 2, n_tables: 2 }), "{e}");
        assert!(matches!(ideal_bits(&tables, &[0], &[]), Err(CoderError::LengthMismatch { .. })));
        assert!(matches!(symbol_bits_into(&tables, &[0], &[0], &mut []), Err(CoderError::LengthMismatch { .. })));
    }
}
