//! Escape payloads: values outside a table's range, coded outside the rANS stream.
//!
//! A value `v` (relative to the table offset) with `v < 0` or `v >= max_value` is coded
//! as the escape symbol in the rANS stream plus the zig-zag magnitude
//! `raw = -2v - 1` (v < 0) or `raw = 2 (v - max_value)` (v >= max_value), written as
//! an Elias-gamma code of `raw + 1` into a separate MSB-first bit stream. Keeping the
//! payload apart leaves the rANS inner loop free of bypass coding; escapes are rare
//! (the hyper-latent's tails), so their cost is a few bits each.

use crate::error::{CoderError, Result};

/// Longest Elias-gamma prefix we accept: `raw + 1 < 2^34` for any pair of `i32`s.
const MAX_GAMMA_ZEROS: u32 = 34;

/// Map an out-of-range value to its zig-zag magnitude.
#[inline]
pub fn to_raw(v: i64, max_value: u32) -> u64 {
    if v < 0 {
        (-2 * v - 1) as u64
    } else {
        2 * (v - max_value as i64) as u64
    }
}

/// Inverse of [`to_raw`].
#[inline]
pub fn from_raw(raw: u64, max_value: u32) -> i64 {
    if raw & 1 == 1 {
        -(raw.div_ceil(2) as i64)
    } else {
        (raw / 2) as i64 + max_value as i64
    }
}

/// Length in bits of the Elias-gamma code of `raw + 1`: `2 floor(log2(raw + 1)) + 1`.
#[inline]
pub fn gamma_len(raw: u64) -> u32 {
    2 * (63 - (raw + 1).leading_zeros()) + 1
}

/// MSB-first bit writer.
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    n_acc: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, n_bits: u32) {
        debug_assert!(n_bits <= 32);
        self.acc = (self.acc << n_bits) | (value & ((1u64 << n_bits) - 1));
        self.n_acc += n_bits;
        while self.n_acc >= 8 {
            self.n_acc -= 8;
            self.bytes.push((self.acc >> self.n_acc) as u8);
        }
    }

    /// Elias-gamma code of `raw + 1`: `len - 1` zeros, then the `len` bits of `raw + 1`.
    pub fn put_gamma(&mut self, raw: u64) {
        let value = raw + 1;
        let len = 64 - value.leading_zeros();
        let mut zeros = len - 1;
        while zeros > 0 {
            let n = zeros.min(32);
            self.put(0, n);
            zeros -= n;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(32);
            left -= n;
            self.put(value >> left, n);
        }
    }

    /// The bytes, the last one zero-padded.
    pub fn finish(mut self) -> Vec<u8> {
        if self.n_acc > 0 {
            let pad = 8 - self.n_acc;
            self.put(0, pad);
        }
        self.bytes
    }
}

/// MSB-first bit reader over a byte slice; reading past the end is an error.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, bit: 0 }
    }

    /// A reader that resumes at bit `bit` (a value of [`BitReader::bit`]).
    pub fn at(bytes: &'a [u8], bit: usize) -> Self {
        BitReader { bytes, bit }
    }

    /// Bits consumed so far.
    pub fn bit(&self) -> usize {
        self.bit
    }

    fn get_bit(&mut self) -> Result<u64> {
        let byte = *self.bytes.get(self.bit / 8).ok_or(CoderError::Truncated { what: "an escape payload" })?;
        let b = (byte >> (7 - (self.bit % 8))) & 1;
        self.bit += 1;
        Ok(b as u64)
    }

    /// Read one Elias-gamma code and return `raw`.
    pub fn get_gamma(&mut self) -> Result<u64> {
        let mut zeros = 0;
        while self.get_bit()? == 0 {
            zeros += 1;
            if zeros > MAX_GAMMA_ZEROS {
                return Err(CoderError::Corrupt { reason: "an escape payload is longer than any value allows".into() });
            }
        }
        let mut value = 1u64;
        for _ in 0..zeros {
            value = (value << 1) | self.get_bit()?;
        }
        Ok(value - 1)
    }

    /// Whole bytes consumed so far (the final one may be partly padding).
    pub fn bytes_used(&self) -> usize {
        self.bit.div_ceil(8)
    }

    /// Whether every byte has been used.
    pub fn all_used(&self) -> bool {
        self.bytes_used() == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trips() {
        for max_value in [0u32, 1, 7, 32] {
            for v in (-70i64..-1).chain(max_value as i64..max_value as i64 + 70).chain([i32::MIN as i64 * 2]) {
                assert_eq!(from_raw(to_raw(v, max_value), max_value), v);
            }
        }
    }

    #[test]
    fn gamma_round_trips() {
        let raws = [0u64, 1, 2, 3, 7, 8, 255, 1 << 20, (1 << 33) + 5];
        let mut w = BitWriter::default();
        for &r in &raws {
            w.put_gamma(r);
        }
        let bytes = w.finish();
        let total: u32 = raws.iter().map(|&r| gamma_len(r)).sum();
        assert_eq!(bytes.len(), total.div_ceil(8) as usize, "gamma_len counts the bits put_gamma writes");
        let mut r = BitReader::new(&bytes);
        for &raw in &raws {
            assert_eq!(r.get_gamma().unwrap(), raw);
        }
        assert_eq!(r.bytes_used(), bytes.len());
    }
}
