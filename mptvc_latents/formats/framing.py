"""The one framing of the project's binary formats: a signature, a CRC-checked header, checked payloads.

::

    magic | version | body_len u32 | body | crc32 u32    a frame (Framing.frame / Framing.unframe);
                                                        the CRC covers every byte before it
    (u32 length, u32 crc32) x n                         a payload table (payload_table / payload_entries)
    payload 0 | payload 1 | ... | payload n-1           the payloads it lists, back to back (split_payloads)

The ``.mptvc`` container (``docs/bitstream.md``) is a frame whose body ends with the payload table
of its segments, which follow the frame. A prior stream (``generation/coding.py``, version 1)
predates frames: its signature (magic, u8 version) and fixed fields carry no length or CRC
(``Framing.check_signature`` checks them), then a payload table and its rANS streams.

Integers are little-endian, CRCs CRC-32/ISO-HDLC (``zlib.crc32``). Every error is a
:class:`FramingError` (a ``ValueError``) whose message is a sentence naming the input; a format
may raise subclasses of its own (the container's ``NotMptvcError`` is a :class:`WrongMagicError`).
No length is trusted for an allocation: each is compared with the bytes that remain first.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mptvc_latents.coder import crc32

__all__ = [
    "ENTRY",
    "CrcMismatchError",
    "Frame",
    "Framing",
    "FramingError",
    "PayloadCrcError",
    "TruncatedError",
    "UnsupportedVersionError",
    "WrongMagicError",
    "payload_entries",
    "payload_table",
    "split_payloads",
]

ENTRY = struct.Struct("<II")  # a payload table entry: length, crc32
_LENGTH = struct.Struct("<I")
_CRC = struct.Struct("<I")


class FramingError(ValueError):
    """Framed bytes could not be read; the message says what is wrong."""


class WrongMagicError(FramingError):
    """The bytes are empty or do not start with the format's magic."""


class UnsupportedVersionError(FramingError):
    """The bytes are of the format, but of another version."""


class TruncatedError(FramingError):
    """The bytes end before the header or a payload does."""


class CrcMismatchError(FramingError):
    """A CRC-32 does not match: the bytes are damaged."""


class PayloadCrcError(CrcMismatchError):
    """The CRC-32 of payload ``index`` (counted from 0 in its table) does not match."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


class Frame(NamedTuple):
    """A checked frame: its ``body``, its ``size`` in bytes (what follows it starts there) and the
    ``version`` it was written in."""

    body: bytes
    size: int
    version: int


@dataclass(frozen=True)
class Framing:
    """One binary format's signature (``magic``, ``version``) and, for framed formats, its frame.

    Messages name the format as ``what``, with its article ("an mptvc file"), and its header as
    ``header`` ("the mptvc header"); ``remedy`` says what to do with another version ("re-encode
    the video with this version"). ``version_format`` is the struct code of the version field:
    ``"<H"`` for frames, ``"<B"`` for prior streams v1.
    """

    magic: bytes
    version: int
    what: str
    header: str
    remedy: str
    version_format: str = "<H"
    also_reads: tuple[int, ...] = ()  # older versions this library still reads

    def __post_init__(self) -> None:
        if not self.magic:
            raise ValueError("A framing needs a magic of at least one byte.")
        struct.pack(self.version_format, self.version)  # raises struct.error for a version that does not fit

    @property
    def signature_size(self) -> int:
        """Bytes of magic and version."""
        return len(self.magic) + struct.calcsize(self.version_format)

    def signature(self, version: int | None = None) -> bytes:
        return self.magic + struct.pack(self.version_format, self.version if version is None else version)

    @property
    def readable(self) -> tuple[int, ...]:
        """Every version this library reads, newest first."""
        return (self.version, *self.also_reads)

    def check_signature(self, data: bytes, name: str = "the data") -> int:
        """Check the magic and the version at the start of ``data``; return the offset after them.

        Raises:
            WrongMagicError: for empty data or another magic (a proper prefix of the magic is truncated).
            TruncatedError: when ``data`` ends inside the magic or the version.
            UnsupportedVersionError: for another version.
        """
        n, m = len(data), len(self.magic)
        if n == 0:
            raise WrongMagicError(f"{_cap(name)} is empty, so it is not {self.what}.")
        if bytes(data[:m]) != self.magic[: min(n, m)]:
            raise WrongMagicError(
                f"{_cap(name)} is not {self.what}: it does not start with the magic bytes {self.magic!r} "
                f"(it starts with {bytes(data[:m])!r})."
            )
        if n < self.signature_size:
            raise TruncatedError(f"{_cap(name)} is cut inside {self.header}: it has only {n} bytes.")
        (version,) = struct.unpack_from(self.version_format, data, m)
        if version not in self.readable:
            known = [str(v) for v in sorted(self.readable)]
            versions = " and ".join(filter(None, (", ".join(known[:-1]), known[-1])))
            plural = "s" if len(self.readable) > 1 else ""
            raise UnsupportedVersionError(
                f"{_cap(name)} is {self.what} of version {version}, but this library reads only "
                f"version{plural} {versions}; {self.remedy}."
            )
        return self.signature_size

    def frame(self, body: bytes, version: int | None = None) -> bytes:
        """``magic | version | body_len | body | crc32`` of the bytes before the CRC (``version``:
        the current one unless an older readable one is asked for).

        Raises:
            ValueError: for a body of 4 GiB or more, or a version this library does not read.
        """
        if len(body) >= 2**32:
            raise ValueError(f"A body of {len(body)} bytes is too large for the frame of {self.what} (under 4 GiB).")
        if version is not None and version not in self.readable:
            raise ValueError(f"{self.what} has no version {version}; this library writes {self.readable}.")
        head = self.signature(version) + _LENGTH.pack(len(body)) + bytes(body)
        return head + _CRC.pack(crc32(head))

    def unframe(self, data: bytes, name: str = "the data") -> Frame:
        """Check the frame at the start of ``data`` (signature, length, CRC) and return its body.

        Raises:
            FramingError: :class:`WrongMagicError`, :class:`UnsupportedVersionError`,
                :class:`TruncatedError` or :class:`CrcMismatchError`, in this order of checks.
        """
        start = self.check_signature(data, name)
        n = len(data)
        if n < start + _LENGTH.size:
            raise TruncatedError(f"{_cap(name)} is cut inside {self.header}: it has only {n} bytes.")
        (body_len,) = _LENGTH.unpack_from(data, start)
        size = start + _LENGTH.size + body_len + _CRC.size
        if n < size:
            raise TruncatedError(
                f"{_cap(name)} is cut inside {self.header}: the header needs {size} bytes, but there are only {n}."
            )
        (stored,) = _CRC.unpack_from(data, size - _CRC.size)
        if crc32(bytes(data[: size - _CRC.size])) != stored:
            raise CrcMismatchError(
                f"The header of {name} fails its CRC check: the bytes are damaged (write them again or fetch "
                f"an intact copy)."
            )
        (version,) = struct.unpack_from(self.version_format, data, len(self.magic))
        return Frame(bytes(data[start + _LENGTH.size : size - _CRC.size]), size, version)


def payload_table(payloads: Iterable[bytes]) -> bytes:
    """The table of ``payloads``: ``(u32 length, u32 crc32)`` each, in order.

    Raises:
        ValueError: for a payload of 4 GiB or more.
    """
    entries = []
    for payload in payloads:
        if len(payload) >= 2**32:
            raise ValueError(f"A payload of {len(payload)} bytes is too large for a payload table (under 4 GiB).")
        entries.append(ENTRY.pack(len(payload), crc32(payload)))
    return b"".join(entries)


def payload_entries(raw: bytes) -> np.ndarray:
    """The entries of a payload table's bytes: uint32 ``(n, 2)``, ``[length, crc32]`` per payload."""
    if len(raw) % ENTRY.size:
        raise ValueError(f"A payload table is a multiple of {ENTRY.size} bytes, got {len(raw)}.")
    return np.frombuffer(raw, dtype="<u4").reshape(-1, 2)  # (n * 2,) -> (n, [length, crc32])


def split_payloads(
    data: bytes, start: int, entries: Sequence[Sequence[int]] | np.ndarray, name: str = "the data"
) -> list[bytes]:
    """The payloads that ``entries`` lists, back to back from ``data[start:]``, each checked.

    Raises:
        TruncatedError: when ``data`` ends inside a payload.
        PayloadCrcError: when a payload's CRC does not match (``.index`` says which).
    """
    payloads, pos = [], start
    for index, (length, crc) in enumerate(np.asarray(entries, dtype=np.int64).reshape(-1, 2).tolist()):
        payload = bytes(data[pos : pos + length])
        if len(payload) != length:
            raise TruncatedError(
                f"{_cap(name)} is cut inside payload {index}: it needs {length} bytes but only {len(payload)} are left."
            )
        if crc32(payload) != crc:
            raise PayloadCrcError(f"Payload {index} of {name} fails its CRC check: the bytes are damaged.", index)
        payloads.append(payload)
        pos += length
    return payloads


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
