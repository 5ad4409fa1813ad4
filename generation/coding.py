"""Lossless recompression of level-0 tokens: the :class:`TokenPrior` drives the project's rANS coder.

The prior is an entropy model: each index gets a 16-bit table quantized from the prior's
next-token distribution, and the Rust range coder (``mptvc_latents.coder``) codes it::

    walk (generation.sample): raster order, sliding windows, KV cache     logits_i (1, V)
      -> softmax in float64 -> integer frequencies, every index >= 1       cdf_i (V + 2,) int32
    encode: one bank of the cdf_i of ``stream_tokens`` tokens -> RangeCoder.encode   one stream
    decode: StreamDecoder over the same stream, one symbol at a time, cdf_i from the decoded past

Encoder and decoder run the same :func:`generation.sample.walk` (same calls and shapes), so on one
machine they compute identical logits and hence identical tables. Float results may differ across
CPUs, torch builds or thread counts; the decoded tokens are then checked against a CRC32 of the
coded ones (besides the coder's own end-state check), so such a stream is refused, not silently
decoded into other tokens. Re-encode where you decode if the machines differ.

Container (``PriorStream``, little-endian)::

    b"MPTP" | u8 version = 1 | 32 B sha256 of the prior's weights | u32 token frames t' | u16 h' | u16 w'
    | u32 stream_tokens | u32 n_streams | u32 crc32 of the indices (int32 LE, raster order)
    | n_streams x (u32 length, u32 crc32) | streams

The signature (magic, version) and the payload table with its streams are those of
``mptvc_latents.formats.framing``, shared with the ``.mptvc`` container. Version 1 predates framed
headers, so its fixed fields carry no CRC of their own: damage there shows as another prior, a grid
that does not fit, or decoded indices that fail their CRC.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from generation.model import TokenPrior
from generation.sample import walk
from mptvc_latents.coder import PRECISION, RangeCoder, StreamDecoder, crc32
from mptvc_latents.formats import framing

__all__ = ["PriorStreamConfig", "compress_indices", "decompress_indices", "prior_digest", "quantized_cdf"]

MAGIC = b"MPTP"
VERSION = 1
FRAMING = framing.Framing(
    MAGIC, VERSION, "a prior stream", "the prior stream header", "code the indices again with this version", "<B"
)
_FIELDS = struct.Struct("<32sIHHIII")  # after the signature: digest, t', h', w', stream_tokens, n_streams, indices crc
_HEADER_SIZE = FRAMING.signature_size + _FIELDS.size
TOTAL = 1 << PRECISION


@dataclass(frozen=True)
class PriorStreamConfig:
    """``stream_tokens``: tokens per rANS stream. A stream costs 33 bytes of header and flushed
    states, and the encoder holds ``stream_tokens`` tables of ``V + 2`` int32 (64 MiB at 4096)."""

    stream_tokens: int = 4096

    def __post_init__(self) -> None:
        if not isinstance(self.stream_tokens, int) or not 1 <= self.stream_tokens < 2**32:
            raise ValueError(f"stream_tokens must be a positive number of tokens, got {self.stream_tokens!r}.")


def prior_digest(prior: TokenPrior) -> bytes:
    """sha256 over the prior's tensors (names, dtypes, shapes, bytes): a stream names its prior."""
    h = hashlib.sha256()
    for name, value in sorted(prior.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def quantized_cdf(logits: Tensor) -> np.ndarray:
    """Next-token logits ``(1, V)`` -> a 16-bit CDF ``(V + 2,)`` int32 for the range coder.

    Every index and the escape (never used: indices are in range) get at least one slot of
    ``2**16``; the rest is shared in proportion to the float64 softmax, and the rounding remainder
    goes to the likeliest index. Deterministic for given logits.
    """
    p = torch.softmax(logits[0].double(), dim=-1).numpy()  # (V,)
    v = p.shape[0]
    if v + 1 >= TOTAL:
        raise ValueError(f"A vocabulary of {v} indices does not fit 16-bit tables (at most {TOTAL - 2}).")
    freq = np.floor(p * (TOTAL - v - 1)).astype(np.int64) + 1  # (V,)
    freq[int(np.argmax(p))] += TOTAL - 1 - int(freq.sum())  # the escape keeps one slot
    cdf = np.zeros(v + 2, np.int64)
    np.cumsum(freq, out=cdf[1 : v + 1])
    cdf[v + 1] = TOTAL
    return cdf.astype(np.int32)


def _bank(cdfs: list[np.ndarray]) -> RangeCoder:
    n = len(cdfs)
    return RangeCoder(np.stack(cdfs), np.full(n, cdfs[0].shape[0], np.int32), np.zeros(n, np.int32))


def compress_indices(prior: TokenPrior, indices: Tensor, config: PriorStreamConfig = PriorStreamConfig()) -> bytes:
    """Raster-order level-0 indices ``(t', h', w')`` of the prior's grid -> a ``PriorStream``.

    Raises:
        ValueError: when the grid is not the prior's or an index is outside its vocabulary.
    """
    _, h, w = prior.config.grid
    window = prior.config.grid[0]
    if indices.ndim != 3 or tuple(indices.shape[1:]) != (h, w) or indices.shape[0] < 1:
        raise ValueError(
            f"indices must be (t', {h}, {w}) for this prior's {h}x{w} token grid, got {tuple(indices.shape)}."
        )
    flat = indices.reshape(1, -1).to(torch.int64)  # (1, t'*h'*w')
    if bool((flat < 0).any()) or bool((flat >= prior.config.vocab_size).any()):
        raise ValueError(f"indices must lie in [0, {prior.config.vocab_size}), the prior's vocabulary.")
    if indices.shape[0] < window:
        raise ValueError(f"A clip of {indices.shape[0]} token frames is shorter than the prior's window of {window}.")
    cdfs: list[np.ndarray] = []

    def known(logits: Tensor, i: int) -> Tensor:
        cdfs.append(quantized_cdf(logits))
        return flat[:, i]

    walk(prior, indices.shape[0], known)
    symbols = flat[0].numpy().astype(np.int32)
    step = config.stream_tokens
    streams = []
    for start in range(0, symbols.shape[0], step):
        part = cdfs[start : start + step]
        streams.append(_bank(part).encode(symbols[start : start + step], np.arange(len(part), dtype=np.int32)))
    fields = _FIELDS.pack(prior_digest(prior), indices.shape[0], h, w, step, len(streams), _indices_crc(flat))
    return FRAMING.signature() + fields + framing.payload_table(streams) + b"".join(streams)


def _indices_crc(flat: Tensor) -> int:
    return crc32(flat.reshape(-1).numpy().astype("<i4").tobytes())


def _read(prior: TokenPrior, data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Check a ``PriorStream`` against ``prior``: ``(token frames, stream_tokens, indices crc, streams)``."""
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"A prior stream must be bytes, got {type(data).__name__}.")
    start = FRAMING.check_signature(data)  # framing.FramingError (a ValueError) for another magic or version
    if len(data) < _HEADER_SIZE:
        raise framing.TruncatedError(
            f"The data is cut inside the prior stream header: it has {len(data)} of its {_HEADER_SIZE} bytes."
        )
    digest, t, h, w, step, n, indices_crc = _FIELDS.unpack_from(data, start)
    if digest != prior_digest(prior):
        raise ValueError(
            "The prior stream was coded with another prior (its weights digest differs); "
            "decode it with the prior that coded it."
        )
    if (h, w) != tuple(prior.config.grid[1:]) or t < prior.config.grid[0] or step < 1:
        raise ValueError(
            f"The prior stream's grid ({t} token frames of {h}x{w}, {step} tokens a stream) "
            f"does not fit the prior's {prior.config.grid}."
        )
    tokens = t * h * w
    if n != -(-tokens // step):
        raise ValueError(
            f"The prior stream holds {n} streams, but {tokens} tokens at {step} a stream need {-(-tokens // step)}."
        )
    offset = _HEADER_SIZE + n * framing.ENTRY.size
    if len(data) < offset:
        raise framing.TruncatedError(
            f"The prior stream is truncated: its table of {n} streams runs past its {len(data)} bytes."
        )
    entries = framing.payload_entries(bytes(data[_HEADER_SIZE:offset]))  # (n, [length, crc32])
    streams = framing.split_payloads(data, offset, entries, "the prior stream")
    offset += sum(len(stream) for stream in streams)
    if offset != len(data):
        raise ValueError(f"The prior stream has {len(data) - offset} bytes after its last stream.")
    return t, step, indices_crc, streams


def decompress_indices(prior: TokenPrior, data: bytes) -> Tensor:
    """A ``PriorStream`` -> the exact indices ``(t', h', w')`` int64 that :func:`compress_indices` coded.

    Raises:
        ValueError: for bytes that are not a prior stream of this prior, or are damaged.
    """
    t, step, indices_crc, streams = _read(prior, data)
    _, h, w = prior.config.grid
    length = prior.config.vocab_size + 2
    decoder: list[StreamDecoder] = []

    def decoded(logits: Tensor, i: int) -> Tensor:
        if i % step == 0:
            if decoder:
                decoder.pop().finish()
            decoder.append(StreamDecoder(streams[i // step]))
        table = RangeCoder(quantized_cdf(logits)[None], [length], [0])
        index = decoder[0].decode(table, 0)
        if not 0 <= index < length - 2:  # the escape is never coded
            raise ValueError(f"token {i} decoded to {index}, outside the vocabulary")
        return torch.tensor([index], dtype=torch.int64)

    try:
        flat = walk(prior, t, decoded)
        decoder.pop().finish()
    except ValueError as e:
        raise ValueError(f"The prior stream does not decode with this prior on this machine: {e}") from e
    if _indices_crc(flat) != indices_crc:
        raise ValueError(
            "The prior stream decoded to other tokens than were coded (CRC32 of the indices differs): "
            "the prior's float results differ on this machine; decode where it was coded."
        )
    return flat.view(t, h, w)  # (1, t'*h'*w') -> (t', h', w')
