//! Thin PyO3 bindings: numpy arrays in, `bytes` out, the GIL released while coding.
//! Every `CoderError` becomes a `ValueError` with the error's sentence.

use std::borrow::Cow;

use numpy::ndarray::{s, Array2, ArrayView1};
use numpy::{Element, IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::PyBytes;

use crate::{cost, parallel, rans, step, tables, CoderError};

fn err(e: CoderError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The array's elements in C order, without a copy when it is contiguous.
fn flat<'a, T: Element + Copy>(a: &'a PyReadonlyArrayDyn<'_, T>) -> Cow<'a, [T]> {
    match a.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(a.as_array().iter().copied().collect()),
    }
}

/// A validated bank of 16-bit CDF tables (CompressAI's `cdfs`, `cdf_lengths`, `offsets`).
#[pyclass(name = "CdfTables", module = "mptvc_latents._coder", frozen)]
struct PyCdfTables {
    inner: tables::CdfTables,
}

fn build(
    cdfs: &PyReadonlyArray2<'_, i32>,
    cdf_lengths: &PyReadonlyArrayDyn<'_, i32>,
    offsets: &PyReadonlyArrayDyn<'_, i32>,
) -> PyResult<tables::CdfTables> {
    let max_len = cdfs.shape()[1];
    let rows: Cow<[i32]> = match cdfs.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(cdfs.as_array().iter().copied().collect()),
    };
    tables::CdfTables::new(&rows, max_len, &flat(cdf_lengths), &flat(offsets)).map_err(err)
}

fn to_sizes(sizes: Vec<i64>) -> PyResult<Vec<usize>> {
    sizes
        .into_iter()
        .map(|s| {
            usize::try_from(s)
                .map_err(|_| PyValueError::new_err(format!("A stream size is negative ({s}); sizes count symbols.")))
        })
        .collect()
}

#[pymethods]
impl PyCdfTables {
    #[new]
    fn new(
        cdfs: PyReadonlyArray2<'_, i32>,
        cdf_lengths: PyReadonlyArrayDyn<'_, i32>,
        offsets: PyReadonlyArrayDyn<'_, i32>,
    ) -> PyResult<Self> {
        Ok(PyCdfTables { inner: build(&cdfs, &cdf_lengths, &offsets)? })
    }

    /// Number of tables.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Encode `symbols[i]` with table `indexes[i]` into one stream.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        symbols: PyReadonlyArrayDyn<'py, i32>,
        indexes: PyReadonlyArrayDyn<'py, i32>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (s, ix) = (flat(&symbols), flat(&indexes));
        let bytes = py.detach(|| rans::encode(&self.inner, &s, &ix)).map_err(err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Decode one stream made by `encode` with the same indexes.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        data: PyBackedBytes,
        indexes: PyReadonlyArrayDyn<'py, i32>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let ix = flat(&indexes);
        let out = py.detach(|| rans::decode(&self.inner, &data, &ix)).map_err(err)?;
        Ok(out.into_pyarray(py))
    }

    /// Encode consecutive runs of `stream_sizes[k]` symbols as independent streams, in parallel.
    #[pyo3(signature = (symbols, indexes, stream_sizes, num_threads = 0))]
    fn encode_streams<'py>(
        &self,
        py: Python<'py>,
        symbols: PyReadonlyArrayDyn<'py, i32>,
        indexes: PyReadonlyArrayDyn<'py, i32>,
        stream_sizes: Vec<i64>,
        num_threads: usize,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let sizes = to_sizes(stream_sizes)?;
        let (s, ix) = (flat(&symbols), flat(&indexes));
        let streams = py.detach(|| parallel::encode_streams(&self.inner, &s, &ix, &sizes, num_threads)).map_err(err)?;
        Ok(streams.iter().map(|b| PyBytes::new(py, b)).collect())
    }

    /// Decode streams made by `encode_streams` into one array.
    #[pyo3(signature = (streams, indexes, stream_sizes, num_threads = 0))]
    fn decode_streams<'py>(
        &self,
        py: Python<'py>,
        streams: Vec<PyBackedBytes>,
        indexes: PyReadonlyArrayDyn<'py, i32>,
        stream_sizes: Vec<i64>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let sizes = to_sizes(stream_sizes)?;
        let ix = flat(&indexes);
        let views: Vec<&[u8]> = streams.iter().map(|b| &b[..]).collect();
        let out = py.detach(|| parallel::decode_streams(&self.inner, &views, &ix, &sizes, num_threads)).map_err(err)?;
        Ok(out.into_pyarray(py))
    }

    /// Ideal cost in bits under these integer tables (escape payload bits included).
    fn ideal_bits(
        &self,
        py: Python<'_>,
        symbols: PyReadonlyArrayDyn<'_, i32>,
        indexes: PyReadonlyArrayDyn<'_, i32>,
    ) -> PyResult<f64> {
        let (s, ix) = (flat(&symbols), flat(&indexes));
        py.detach(|| cost::ideal_bits(&self.inner, &s, &ix)).map_err(err)
    }

    /// Ideal cost split as `(table_bits, n_escapes, escape_bits)`.
    fn ideal_cost(
        &self,
        py: Python<'_>,
        symbols: PyReadonlyArrayDyn<'_, i32>,
        indexes: PyReadonlyArrayDyn<'_, i32>,
    ) -> PyResult<(f64, u64, u64)> {
        let (s, ix) = (flat(&symbols), flat(&indexes));
        let c = py.detach(|| cost::ideal_cost(&self.inner, &s, &ix)).map_err(err)?;
        Ok((c.table_bits, c.n_escapes, c.escape_bits))
    }

    /// Ideal cost in bits of each value (escape payload included), flat float64.
    fn symbol_bits<'py>(
        &self,
        py: Python<'py>,
        symbols: PyReadonlyArrayDyn<'py, i32>,
        indexes: PyReadonlyArrayDyn<'py, i32>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (s, ix) = (flat(&symbols), flat(&indexes));
        let mut out = vec![0.0f64; s.len()];
        py.detach(|| cost::symbol_bits_into(&self.inner, &s, &ix, &mut out)).map_err(err)?;
        Ok(out.into_pyarray(py))
    }

    /// Bits of every symbol of every table, `(n_tables, longest table's symbols)` float64, the
    /// escape last in each row; `inf` past a shorter table's escape (a symbol it cannot code).
    fn bits_table<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        let rows: Vec<Vec<f64>> = (0..self.inner.len()).map(|t| cost::table_bits(&self.inner, t)).collect();
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut table = Array2::from_elem((rows.len(), width), f64::INFINITY);
        for (mut out, row) in table.rows_mut().into_iter().zip(&rows) {
            out.slice_mut(s![..row.len()]).assign(&ArrayView1::from(row));
        }
        table.into_pyarray(py)
    }

    fn __repr__(&self) -> String {
        format!("CdfTables(n_tables={}, precision={})", self.inner.len(), tables::PRECISION)
    }
}

/// Decodes one stream made by `CdfTables.encode` symbol by symbol, each with a table
/// chosen just before (autoregressive priors). The stream format is unchanged.
#[pyclass(name = "StreamDecoder", module = "mptvc_latents._coder")]
struct PyStreamDecoder {
    inner: step::StepDecoder,
}

#[pymethods]
impl PyStreamDecoder {
    #[new]
    fn new(data: PyBackedBytes) -> PyResult<Self> {
        Ok(PyStreamDecoder { inner: step::StepDecoder::new(data.to_vec()).map_err(err)? })
    }

    /// Decode the next symbol with table `index` of `tables`; on an error nothing is consumed.
    fn decode(&mut self, tables: PyRef<'_, PyCdfTables>, index: i64) -> PyResult<i32> {
        let position = self.inner.position();
        let index = i32::try_from(index)
            .map_err(|_| err(CoderError::IndexOutOfRange { position, index, n_tables: tables.inner.len() }))?;
        self.inner.decode(&tables.inner, index).map_err(err)
    }

    /// Decode the next `len(indexes)` symbols, symbol `i` with table `indexes[i]` (one batch of
    /// `decode` calls, without the GIL); on an error nothing of the batch is consumed.
    fn decode_many<'py>(
        &mut self,
        py: Python<'py>,
        tables: PyRef<'_, PyCdfTables>,
        indexes: PyReadonlyArrayDyn<'py, i32>,
    ) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let ix = flat(&indexes);
        let inner = &mut self.inner;
        let table = &tables.inner;
        let out = py.detach(|| inner.decode_many(table, &ix)).map_err(err)?;
        Ok(out.into_pyarray(py))
    }

    /// Number of symbols decoded so far.
    #[getter]
    fn position(&self) -> usize {
        self.inner.position()
    }

    /// Check that the stream ended with the last decoded symbol.
    fn finish(&self) -> PyResult<()> {
        self.inner.finish().map_err(err)
    }

    fn __repr__(&self) -> String {
        format!("StreamDecoder(position={})", self.inner.position())
    }
}

/// CompressAI's `RansEncoder.encode_with_indexes` contract, with numpy arrays.
#[pyfunction]
fn encode_with_indexes<'py>(
    py: Python<'py>,
    symbols: PyReadonlyArrayDyn<'py, i32>,
    indexes: PyReadonlyArrayDyn<'py, i32>,
    cdfs: PyReadonlyArray2<'py, i32>,
    cdf_lengths: PyReadonlyArrayDyn<'py, i32>,
    offsets: PyReadonlyArrayDyn<'py, i32>,
) -> PyResult<Bound<'py, PyBytes>> {
    PyCdfTables { inner: build(&cdfs, &cdf_lengths, &offsets)? }.encode(py, symbols, indexes)
}

/// CompressAI's `RansDecoder.decode_with_indexes` contract, with numpy arrays.
#[pyfunction]
fn decode_with_indexes<'py>(
    py: Python<'py>,
    data: PyBackedBytes,
    indexes: PyReadonlyArrayDyn<'py, i32>,
    cdfs: PyReadonlyArray2<'py, i32>,
    cdf_lengths: PyReadonlyArrayDyn<'py, i32>,
    offsets: PyReadonlyArrayDyn<'py, i32>,
) -> PyResult<Bound<'py, PyArray1<i32>>> {
    PyCdfTables { inner: build(&cdfs, &cdf_lengths, &offsets)? }.decode(py, data, indexes)
}

/// CRC-32 (IEEE, as zlib) of `data`.
#[pyfunction]
fn crc32(py: Python<'_>, data: PyBackedBytes) -> u32 {
    py.detach(|| parallel::crc32(&data))
}

#[pymodule]
fn _coder(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyCdfTables>()?;
    m.add_class::<PyStreamDecoder>()?;
    m.add_function(wrap_pyfunction!(encode_with_indexes, m)?)?;
    m.add_function(wrap_pyfunction!(decode_with_indexes, m)?)?;
    m.add_function(wrap_pyfunction!(crc32, m)?)?;
    m.add("PRECISION", tables::PRECISION)?;
    m.add("N_STATES", rans::N_STATES)?;
    m.add("STREAM_VERSION", crate::STREAM_VERSION)?;
    Ok(())
}
