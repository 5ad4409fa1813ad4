//! A bank of integer CDF tables, validated once and precomputed for coding.
//!
//! The contract is CompressAI's `encode_with_indexes`: table `t` is the first
//! `cdf_lengths[t]` entries of row `t` of `cdfs`, a CDF that starts at 0, rises
//! strictly (every symbol has frequency >= 1) and ends at `2^PRECISION`. A table of
//! length `n` has `n - 1` symbols; the last one (`n - 2`) is the **escape**: a value
//! `v` is coded as symbol `v - offsets[t]` when that lies in `0..n-2`, otherwise as
//! the escape followed by a payload outside the rANS stream (see `escape`).
//!
//! For each symbol we precompute the encoder's reciprocal (Giesen, "Interleaved
//! entropy coders", 2014: division-free rANS encoding) and, for the decoder, the
//! symbol starts padded into 16-lane chunks so the slot -> symbol search is a
//! branch-free count that the compiler vectorises.

use crate::error::{CoderError, Result};
use crate::escape::to_raw;

/// Bits of probability precision: frequencies sum to `1 << PRECISION`.
pub const PRECISION: u32 = 16;
/// Total frequency of every table.
pub const TOTAL: u32 = 1 << PRECISION;
/// Lanes of one search chunk.
pub const LANES: usize = 16;
/// Lanes of one chunk at or below `slot` (vectorised: one compare and a horizontal add).
#[inline(always)]
fn count_le(chunk: &[u16; LANES], slot: u16) -> u32 {
    chunk.iter().map(|&s| (s <= slot) as u16).sum::<u16>() as u32
}

/// Tables with more chunks than this use a binary search instead of the count.
const MAX_COUNT_CHUNKS: u32 = 8;

/// What the encoder needs for one symbol: `x' = x + bias + (mulhi(x, rcp) >> shift) * cmpl_freq`
/// equals `(x / freq) * TOTAL + x % freq + start` for every state `x < 2^63`. 16 bytes, so
/// large banks stay in cache.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct EncSymbol {
    pub rcp_freq: u64,
    pub bias: u32,
    /// `TOTAL - freq` (so `freq = TOTAL - cmpl_freq`, including `freq = TOTAL`).
    pub cmpl_freq: u16,
    pub rcp_shift: u16,
}

/// What the decoder needs for one symbol, packed as `start | (freq - 1) << 16`.
#[derive(Clone, Copy, Debug, Default)]
#[repr(transparent)]
pub struct DecSymbol(u32);

impl DecSymbol {
    fn new(start: u32, freq: u32) -> Self {
        DecSymbol(start | (freq - 1) << 16)
    }

    #[inline(always)]
    pub fn start(self) -> u32 {
        self.0 & 0xFFFF
    }

    #[inline(always)]
    pub fn freq(self) -> u32 {
        (self.0 >> 16) + 1
    }
}

/// Per-table layout inside the flat symbol arrays.
#[derive(Clone, Copy, Debug)]
pub struct TableMeta {
    /// First symbol of this table in `enc` / `dec`.
    pub sym_base: u32,
    /// First chunk of this table in `search`.
    pub chunk_base: u32,
    /// Number of 16-lane search chunks.
    pub n_chunks: u32,
    /// Zero lanes in front of the starts, so the chunks stay sorted: symbol = count - n_pad.
    pub n_pad: u32,
    /// Index of the escape symbol (`cdf_length - 2`); values `0..max_value` are direct.
    pub max_value: u32,
    pub offset: i32,
}

impl TableMeta {
    /// The table symbol that codes `value`, and the zig-zag escape magnitude (see `escape`)
    /// when the value lies outside `offset..offset + max_value` and is coded as the escape.
    #[inline(always)]
    pub fn symbol_of(&self, value: i32) -> (u32, Option<u64>) {
        let v = value as i64 - self.offset as i64;
        if (v as u64) < self.max_value as u64 {
            (v as u32, None)
        } else {
            (self.max_value, Some(to_raw(v, self.max_value)))
        }
    }
}

/// A validated, precomputed bank of CDF tables.
#[derive(Clone, Debug)]
pub struct CdfTables {
    pub(crate) meta: Vec<TableMeta>,
    pub(crate) enc: Vec<EncSymbol>,
    pub(crate) dec: Vec<DecSymbol>,
    /// Starts of symbols 1.. of each table, preceded by zeros to fill whole chunks.
    pub(crate) search: Vec<[u16; LANES]>,
    /// The CDFs as given, kept for the per-table costs (`cost::table_bits`) and for inspection.
    cdfs: Vec<Vec<u32>>,
}

impl EncSymbol {
    fn new(start: u32, freq: u32) -> Self {
        debug_assert!((1..=TOTAL).contains(&freq) && start + freq <= TOTAL);
        let cmpl_freq = (TOTAL - freq) as u16;
        if freq == 1 {
            // mulhi(x, 2^64 - 1) = x - 1 for x >= 1, so x' = x + start + TOTAL - 1 + (x - 1)(TOTAL - 1)
            // = x * TOTAL + start, which is the rANS step for freq = 1.
            return EncSymbol { rcp_freq: u64::MAX, bias: start + TOTAL - 1, cmpl_freq, rcp_shift: 0 };
        }
        // shift = ceil(log2(freq)); rcp = ceil(2^(63 + shift) / freq) < 2^64.
        let shift = 32 - (freq - 1).leading_zeros();
        let rcp = (1u128 << (63 + shift)).div_ceil(freq as u128);
        debug_assert!(rcp <= u64::MAX as u128);
        EncSymbol { rcp_freq: rcp as u64, bias: start, cmpl_freq, rcp_shift: (shift - 1) as u16 }
    }

    #[inline(always)]
    pub fn freq(self) -> u32 {
        TOTAL - self.cmpl_freq as u32
    }
}

impl CdfTables {
    /// Validate and precompute a bank.
    ///
    /// `cdfs` is row-major `(n_tables, max_len)`; `cdf_lengths` and `offsets` have one entry per table.
    pub fn new(cdfs: &[i32], max_len: usize, cdf_lengths: &[i32], offsets: &[i32]) -> Result<Self> {
        let n_tables = cdf_lengths.len();
        if n_tables == 0 {
            return Err(CoderError::InvalidArgument {
                reason: "The table bank is empty: pass at least one CDF table.".into(),
            });
        }
        if offsets.len() != n_tables {
            return Err(CoderError::LengthMismatch { what: "offsets", expected: n_tables, got: offsets.len() });
        }
        if max_len == 0 || cdfs.len() != n_tables * max_len {
            return Err(CoderError::LengthMismatch {
                what: "cdfs (rows times columns)",
                expected: n_tables * max_len.max(1),
                got: cdfs.len(),
            });
        }
        let mut rows = Vec::with_capacity(n_tables);
        for (t, &len) in cdf_lengths.iter().enumerate() {
            if len < 2 || len as usize > max_len {
                return Err(CoderError::InvalidCdf {
                    table: t,
                    reason: format!(
                        "its length {len} must lie in 2..={max_len} (the row width), since a table holds \
                         at least the escape symbol"
                    ),
                });
            }
            let row = &cdfs[t * max_len..t * max_len + len as usize];
            if row[0] != 0 {
                return Err(CoderError::InvalidCdf {
                    table: t,
                    reason: format!("it starts at {} instead of 0", row[0]),
                });
            }
            if row[row.len() - 1] != TOTAL as i32 {
                return Err(CoderError::InvalidCdf {
                    table: t,
                    reason: format!("it ends at {} instead of {TOTAL} (16-bit precision)", row[row.len() - 1]),
                });
            }
            if let Some(k) = row.windows(2).position(|w| w[1] <= w[0]) {
                return Err(CoderError::InvalidCdf {
                    table: t,
                    reason: format!(
                        "it is not strictly increasing at entry {} ({} then {}), so a symbol would have \
                         zero frequency",
                        k + 1,
                        row[k],
                        row[k + 1]
                    ),
                });
            }
            rows.push(row.iter().map(|&c| c as u32).collect::<Vec<u32>>());
        }
        Ok(Self::from_rows(rows, offsets))
    }

    fn from_rows(cdfs: Vec<Vec<u32>>, offsets: &[i32]) -> Self {
        let mut meta = Vec::with_capacity(cdfs.len());
        let mut enc = Vec::new();
        let mut dec = Vec::new();
        let mut search: Vec<[u16; LANES]> = Vec::new();
        for (row, &offset) in cdfs.iter().zip(offsets) {
            let n_sym = row.len() - 1;
            let n_chunks = (n_sym - 1).div_ceil(LANES).max(1);
            let n_pad = n_chunks * LANES - (n_sym - 1);
            meta.push(TableMeta {
                sym_base: enc.len() as u32,
                chunk_base: search.len() as u32,
                n_chunks: n_chunks as u32,
                n_pad: n_pad as u32,
                max_value: (n_sym - 1) as u32,
                offset,
            });
            for s in 0..n_sym {
                let (start, freq) = (row[s], row[s + 1] - row[s]);
                enc.push(EncSymbol::new(start, freq));
                dec.push(DecSymbol::new(start, freq));
            }
            let lanes: Vec<u16> =
                std::iter::repeat_n(0, n_pad).chain(row[1..n_sym].iter().map(|&c| c as u16)).collect();
            search.extend(lanes.chunks_exact(LANES).map(|c| <[u16; LANES]>::try_from(c).unwrap()));
        }
        CdfTables { meta, enc, dec, search, cdfs }
    }

    /// Number of tables in the bank.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Always false: a bank holds at least one table.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// The CDF of table `t` as given.
    pub fn cdf(&self, t: usize) -> &[u32] {
        &self.cdfs[t]
    }

    /// The offset of table `t`.
    pub fn offset(&self, t: usize) -> i32 {
        self.meta[t].offset
    }

    /// Symbol of table `meta` whose interval holds `slot` (`slot < TOTAL`).
    #[inline(always)]
    pub(crate) fn find(&self, meta: &TableMeta, slot: u32) -> u32 {
        let slot = slot as u16;
        let base = meta.chunk_base as usize;
        // Number of lanes (zero padding included) at or below the slot, minus the padding.
        let count = if meta.n_chunks == 1 {
            // SAFETY: every table owns n_chunks >= 1 chunks from chunk_base (built in from_rows).
            count_le(unsafe { self.search.get_unchecked(base) }, slot)
        } else if meta.n_chunks <= MAX_COUNT_CHUNKS {
            // SAFETY: as above.
            let chunks = unsafe { self.search.get_unchecked(base..base + meta.n_chunks as usize) };
            chunks.iter().map(|c| count_le(c, slot)).sum()
        } else {
            // SAFETY: as above.
            let chunks = unsafe { self.search.get_unchecked(base..base + meta.n_chunks as usize) };
            chunks.as_flattened().partition_point(|&s| s <= slot) as u32
        };
        count - meta.n_pad
    }

    /// The encoder's view of symbol `s` of table `meta` (`s <= meta.max_value`).
    #[inline(always)]
    pub(crate) fn enc_symbol(&self, meta: &TableMeta, s: u32) -> EncSymbol {
        debug_assert!(s <= meta.max_value);
        // SAFETY: a table owns max_value + 1 symbols from sym_base (built in from_rows).
        unsafe { *self.enc.get_unchecked((meta.sym_base + s) as usize) }
    }

    /// The decoder's view of symbol `s` of table `meta` (`s <= meta.max_value`).
    #[inline(always)]
    pub(crate) fn dec_symbol(&self, meta: &TableMeta, s: u32) -> DecSymbol {
        debug_assert!(s <= meta.max_value);
        // SAFETY: as in enc_symbol; `find` returns at most the last symbol.
        unsafe { *self.dec.get_unchecked((meta.sym_base + s) as usize) }
    }

    /// Validate a table index read from the caller.
    #[inline(always)]
    pub(crate) fn meta_at(&self, position: usize, index: i32) -> Result<&TableMeta> {
        self.meta.get(index as u32 as usize).ok_or(CoderError::IndexOutOfRange {
            position,
            index: index as i64,
            n_tables: self.meta.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_matches_division() {
        let mut rng = 0x9E3779B97F4A7C15u64;
        for freq in (1..=TOTAL).step_by(97).chain([1, 2, 3, TOTAL - 1, TOTAL, 32768, 32769]) {
            let e = EncSymbol::new(0, freq);
            for k in 0..2000u64 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                // States the encoder can see: [2^31, freq << 47).
                let hi = (freq as u64) << 47;
                let x = match k {
                    0 => 1 << 31,
                    1 => hi - 1,
                    _ => (1u64 << 31) + rng % (hi - (1 << 31)),
                };
                let q = ((x as u128 * e.rcp_freq as u128) >> 64) as u64 >> e.rcp_shift;
                let got = x + e.bias as u64 + q * e.cmpl_freq as u64;
                let want = (x / freq as u64) * TOTAL as u64 + x % freq as u64;
                assert_eq!(got, want, "freq {freq} x {x}");
            }
        }
    }

    #[test]
    fn find_returns_the_symbol_of_every_slot() {
        // A 40-symbol table exercises several chunks; a 300-symbol one the binary search.
        for n_sym in [2usize, 3, 9, 17, 18, 40, 300] {
            let mut cdf = vec![0u32];
            let step = TOTAL / n_sym as u32;
            for s in 1..n_sym {
                cdf.push(s as u32 * step - (s as u32 % 3));
            }
            cdf.push(TOTAL);
            let t = CdfTables::from_rows(vec![cdf.clone()], &[0]);
            for slot in (0..TOTAL).step_by(7).chain([0, TOTAL - 1]) {
                let s = t.find(&t.meta[0], slot) as usize;
                assert!(cdf[s] <= slot && slot < cdf[s + 1], "n_sym {n_sym} slot {slot} got {s}");
            }
        }
    }
}
