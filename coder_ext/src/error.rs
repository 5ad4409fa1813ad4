//! Errors of the coder. Every message is a full sentence that says what was wrong.

use std::fmt;

/// Everything that can go wrong while building tables, encoding or decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoderError {
    /// Two arrays that must have the same length do not.
    LengthMismatch { what: &'static str, expected: usize, got: usize },
    /// A table index is outside the bank.
    IndexOutOfRange { position: usize, index: i64, n_tables: usize },
    /// A CDF table breaks the contract (starts at 0, strictly increasing, ends at 2^16).
    InvalidCdf { table: usize, reason: String },
    /// The input bytes end before the decoder has what it needs.
    Truncated { what: &'static str },
    /// The input bytes are not a stream produced by this coder for these indexes and tables.
    Corrupt { reason: String },
    /// Any other invalid argument.
    InvalidArgument { reason: String },
}

impl fmt::Display for CoderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoderError::LengthMismatch { what, expected, got } => {
                write!(f, "The lengths do not match: {what} has {got} entries but {expected} were expected.")
            }
            CoderError::IndexOutOfRange { position, index, n_tables } => write!(
                f,
                "The table index {index} at position {position} is out of range: the bank has \
                 {n_tables} tables, so indexes must lie in 0..{n_tables}."
            ),
            CoderError::InvalidCdf { table, reason } => {
                write!(f, "The CDF table {table} is invalid: {reason}.")
            }
            CoderError::Truncated { what } => write!(
                f,
                "The stream is truncated: it ended while reading {what}; the bytes are incomplete \
                 or do not belong to these indexes."
            ),
            CoderError::Corrupt { reason } => write!(
                f,
                "The stream is corrupt: {reason}; the bytes were damaged or were encoded with \
                 other tables or indexes."
            ),
            CoderError::InvalidArgument { reason } => write!(f, "{reason}"),
        }
    }
}

impl std::error::Error for CoderError {}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CoderError>;
