//! Step-by-step decoding of one stream, for autoregressive (adaptive) tables.
//!
//! The decoder of [`crate::rans`] already runs strictly in symbol order: symbol `i` uses
//! state `i % 4` and the words are read in order. So a stream written by
//! [`crate::encode`] with one table per symbol can be decoded one symbol at a time, the
//! table of symbol `i` chosen after symbol `i - 1` is known. The stream format is the
//! same; only the driver differs.
//!
//! ```
//! use mptvc_coder::{encode, CdfTables, StepDecoder};
//! let tables = CdfTables::new(&[0, 40000, 65535, 65536, 0, 9, 60000, 65536], 4, &[4, 4], &[0, 5]).unwrap();
//! let bytes = encode(&tables, &[1, 6, -2], &[0, 1, 0]).unwrap();
//! let mut dec = StepDecoder::new(bytes).unwrap();
//! assert_eq!(dec.decode(&tables, 0).unwrap(), 1);
//! assert_eq!(dec.decode(&tables, 1).unwrap(), 6);
//! assert_eq!(dec.decode(&tables, 0).unwrap(), -2);
//! dec.finish().unwrap();
//! ```

use crate::error::Result;
use crate::rans::{split_stream, Decoder, N_STATES};
use crate::tables::CdfTables;

/// Decodes a stream made by [`crate::encode`] one symbol at a time, each with a table
/// the caller picks just before. A failed [`StepDecoder::decode`] consumes nothing.
#[derive(Debug, Clone)]
pub struct StepDecoder {
    data: Vec<u8>,
    /// Start of the escape payload in `data`.
    payload_start: usize,
    /// Start of the rANS words in `data` (the end of the payload).
    words_start: usize,
    /// Next word to read, in units of words from `words_start`.
    word_pos: usize,
    /// Next escape payload bit to read.
    escape_bit: usize,
    x: [u64; N_STATES],
    /// Symbols decoded so far.
    position: usize,
}

impl StepDecoder {
    /// Parse the header and the initial states of `data`.
    pub fn new(data: Vec<u8>) -> Result<Self> {
        let (payload_len, n_words_bytes) = {
            let (payload, words) = split_stream(&data)?;
            (payload.len(), words.len())
        };
        let words_start = data.len() - n_words_bytes;
        let payload_start = words_start - payload_len;
        let mut dec =
            StepDecoder { data, payload_start, words_start, word_pos: 0, escape_bit: 0, x: [0; N_STATES], position: 0 };
        let mut inner = dec.decoder();
        let x = inner.initial_states()?;
        dec.word_pos = inner.pos;
        dec.x = x;
        Ok(dec)
    }

    /// The shared decoder over this stream's parts, at the current read positions.
    fn decoder(&self) -> Decoder<'_> {
        let payload = &self.data[self.payload_start..self.words_start];
        Decoder::new(payload, &self.data[self.words_start..], self.word_pos, self.escape_bit)
    }

    /// Decode the next symbol with table `index` of `tables`. On an error (a table index
    /// out of range, a stream that ran out or is damaged) nothing is consumed.
    pub fn decode(&mut self, tables: &CdfTables, index: i32) -> Result<i32> {
        let mut dec = self.decoder();
        let k = self.position % N_STATES;
        let mut x = self.x[k];
        let symbol = dec.get(tables, &mut x, self.position, index)?;
        let (word_pos, escape_bit) = (dec.pos, dec.escapes.bit());
        self.word_pos = word_pos;
        self.escape_bit = escape_bit;
        self.x[k] = x;
        self.position += 1;
        Ok(symbol)
    }

    /// Decode the next `indexes.len()` symbols, symbol `i` with table `indexes[i]`: a batch
    /// of [`StepDecoder::decode`] calls, for tables that depend on earlier batches (e.g. one
    /// frame of a video at a time). On an error nothing of the batch is consumed.
    pub fn decode_many(&mut self, tables: &CdfTables, indexes: &[i32]) -> Result<Vec<i32>> {
        let saved = (self.word_pos, self.escape_bit, self.x, self.position);
        let mut out = Vec::with_capacity(indexes.len());
        for &index in indexes {
            match self.decode(tables, index) {
                Ok(symbol) => out.push(symbol),
                Err(e) => {
                    (self.word_pos, self.escape_bit, self.x, self.position) = saved;
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    /// Number of symbols decoded so far (the position of the next one).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Check that the stream ended here: every state back at `2^31`, every word read and
    /// every escape payload byte used.
    pub fn finish(&self) -> Result<()> {
        self.decoder().check_end(self.x)
    }
}
