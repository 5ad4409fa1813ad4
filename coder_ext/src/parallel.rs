//! Many independent streams (segments per level and chunk) coded in parallel.
//!
//! Streams are split by the caller's `sizes`, so the bytes depend only on the input,
//! never on the number of threads or on scheduling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{CoderError, Result};
use crate::rans;
use crate::tables::CdfTables;

/// A pool per requested thread count, built once; 0 means rayon's global pool.
fn with_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Result<R> {
    if threads == 0 {
        return Ok(f());
    }
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();
    let pool = {
        let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        match pools.get(&threads) {
            Some(p) => p.clone(),
            None => {
                let p =
                    ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| CoderError::InvalidArgument {
                        reason: format!("A pool of {threads} threads could not be started: {e}."),
                    })?;
                let p = Arc::new(p);
                pools.insert(threads, p.clone());
                p
            }
        }
    };
    Ok(pool.install(f))
}

fn ranges(sizes: &[usize], total: usize) -> Result<Vec<std::ops::Range<usize>>> {
    let sum: usize = sizes.iter().sum();
    if sum != total {
        return Err(CoderError::LengthMismatch { what: "the sum of stream sizes", expected: total, got: sum });
    }
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&s| {
            start += s;
            start - s..start
        })
        .collect())
}

/// Encode consecutive runs of `sizes[k]` symbols as independent streams.
pub fn encode_streams(
    tables: &CdfTables,
    symbols: &[i32],
    indexes: &[i32],
    sizes: &[usize],
    threads: usize,
) -> Result<Vec<Vec<u8>>> {
    if symbols.len() != indexes.len() {
        return Err(CoderError::LengthMismatch { what: "indexes", expected: symbols.len(), got: indexes.len() });
    }
    let ranges = ranges(sizes, symbols.len())?;
    with_pool(threads, || {
        ranges
            .into_par_iter()
            .map(|r| rans::encode(tables, &symbols[r.clone()], &indexes[r]))
            .collect::<Result<Vec<_>>>()
    })?
}

/// Decode streams made by [`encode_streams`] into one array.
pub fn decode_streams(
    tables: &CdfTables,
    streams: &[&[u8]],
    indexes: &[i32],
    sizes: &[usize],
    threads: usize,
) -> Result<Vec<i32>> {
    if streams.len() != sizes.len() {
        return Err(CoderError::LengthMismatch { what: "streams", expected: sizes.len(), got: streams.len() });
    }
    let ranges = ranges(sizes, indexes.len())?;
    let mut out = vec![0i32; indexes.len()];
    let mut parts = Vec::with_capacity(sizes.len());
    let mut rest = out.as_mut_slice();
    for &s in sizes {
        let (head, tail) = rest.split_at_mut(s);
        parts.push(head);
        rest = tail;
    }
    with_pool(threads, || {
        parts.into_par_iter().zip(ranges).zip(streams.par_iter()).enumerate().try_for_each(|(k, ((part, r), data))| {
            rans::decode_into(tables, data, &indexes[r], part).map_err(|e| match e {
                CoderError::Truncated { .. } | CoderError::Corrupt { .. } => {
                    CoderError::Corrupt { reason: format!("stream {k} could not be decoded ({e})") }
                }
                other => other,
            })
        })
    })??;
    Ok(out)
}

/// CRC-32 (IEEE 802.3, as in zlib and PNG) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}
