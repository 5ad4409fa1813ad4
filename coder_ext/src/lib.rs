//! Bit-exact entropy coder of MPT-VC: interleaved rANS over banks of 16-bit integer
//! CDF tables, with escapes for out-of-range values, many streams in parallel and
//! CRC-32 for the container. `CdfTables::new` is the one check of the table contract and
//! `cost` the one count of ideal bits under the tables. The core knows nothing of Python;
//! the bindings live in `python.rs` behind the `python` feature.
//!
//! ```
//! use mptvc_coder::{CdfTables, encode, decode};
//! // One table: symbols 0, 1 with frequencies 40000 and 25535, plus the escape (freq 1).
//! let tables = CdfTables::new(&[0, 40000, 65535, 65536], 4, &[4], &[0]).unwrap();
//! let symbols = [0, 1, 1, 0, 7, -3];
//! let indexes = [0; 6];
//! let bytes = encode(&tables, &symbols, &indexes).unwrap();
//! assert_eq!(decode(&tables, &bytes, &indexes).unwrap(), symbols);
//! ```

pub mod cost;
pub mod error;
pub mod escape;
pub mod parallel;
pub mod rans;
pub mod step;
pub mod tables;

#[cfg(feature = "python")]
mod python;

pub use cost::{ideal_bits, ideal_cost, IdealCost};
pub use error::{CoderError, Result};
pub use parallel::{crc32, decode_streams, encode_streams};
pub use rans::{decode, decode_into, encode, N_STATES};
pub use step::StepDecoder;
pub use tables::{CdfTables, PRECISION, TOTAL};

/// Version of the stream layout written by [`encode`].
pub const STREAM_VERSION: u32 = 1;
