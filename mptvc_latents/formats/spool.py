"""``.mptvc`` files of long videos without holding their segments in memory.

The container puts level 0 of every chunk before level 1 (``container.py``), but an encoder
makes every level of a chunk at once. :class:`SegmentSpool` keeps each level's segments in a
temporary file as chunks finish (plus ``(length, crc32)`` per segment) and writes the file from
them; the bytes equal ``write_mptvc`` of the same segments::

    MPTVC.compress_stream(frames, segments=spool) -> spool[k].append((z, y)) per chunk -> level files
    spool.write(out, info, config, digest): mptvc_header(payload table) | level 0 file | level 1 file | ...

:func:`open_mptvc` is ``read_mptvc`` for decoding a chunk at a time: it reads the header only and
gives a ``Compressed`` whose segments are read from the file when a chunk asks for them (each
checked against its CRC then; ``verify=True`` also checks every one up front, one at a time).
Nothing here imports torch.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

from mptvc_latents.coder import crc32
from mptvc_latents.formats import framing
from mptvc_latents.formats.container import (
    KINDS,
    Header,
    NoCompleteLevelError,
    ReadReport,
    SegmentCrcError,
    TrailingDataError,
    TruncatedHeaderError,
    check_checkpoint,
    intra_period,
    mptvc_header,
    parse_header,
)
from mptvc_latents.types import Compressed, VideoInfo

__all__ = ["SegmentSpool", "open_mptvc"]

Segment = tuple[bytes, bytes]
_BLOCK = 1 << 20


class _SpooledLevel(Sequence[Segment]):
    """One level's segments in a temporary file: ``append((z, y))``, read back by chunk index."""

    def __init__(self, folder: str | None) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=folder)
        self.entries: list[tuple[int, int]] = []  # (length, crc32) per payload: z, y, z, y, ...
        self.offsets: list[int] = []  # file offset of each chunk's z

    def append(self, segment: Segment) -> None:
        self.file.seek(0, 2)
        self.offsets.append(self.file.tell())
        for payload in segment:
            payload = bytes(payload)
            self.entries.append((len(payload), crc32(payload)))
            self.file.write(payload)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, c):
        if isinstance(c, slice):
            return [self[i] for i in range(*c.indices(len(self)))]
        z_len, y_len = self.entries[2 * c][0], self.entries[2 * c + 1][0]
        self.file.seek(self.offsets[c])
        data = self.file.read(z_len + y_len)
        return data[:z_len], data[z_len:]


class SegmentSpool(Sequence[_SpooledLevel]):
    """Segments of every level on disk until the ``.mptvc`` file is written (module docstring).

    ``spool[k]`` appends and reads level k's ``(z, y)`` segments, so a spool stands in for
    ``Compressed.segments`` (``MPTVC.compress_stream(..., segments=spool)``, ``MPTVC.decompress``).
    ``folder``: where the temporary files go (default: the system's temp folder); they vanish when
    the spool is closed or collected. Use it as a context manager.
    """

    def __init__(self, levels: int, folder: str | Path | None = None) -> None:
        self.levels = [_SpooledLevel(None if folder is None else str(folder)) for _ in range(levels)]

    def __len__(self) -> int:
        return len(self.levels)

    def __getitem__(self, k):
        return self.levels[k]

    def __enter__(self) -> SegmentSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for level in self.levels:
            level.file.close()

    def payload_bytes(self) -> list[int]:
        """Bytes of each level's segments."""
        return [sum(length for length, _ in level.entries) for level in self.levels]

    def write(self, out: IO[bytes], info: VideoInfo, config: Mapping[str, Any], digest: str) -> int:
        """Write the ``.mptvc`` file to the binary file ``out``; returns its size in bytes.

        Raises:
            ValueError: as ``write_mptvc`` does, when the segments do not fit ``info`` and ``config``.
        """
        table = b"".join(framing.ENTRY.pack(*entry) for level in self.levels for entry in level.entries)
        header = mptvc_header(info, config, digest, [len(level) for level in self.levels], table)
        out.write(header)
        for level in self.levels:
            level.file.seek(0)
            shutil.copyfileobj(level.file, out, _BLOCK)
        return len(header) + sum(self.payload_bytes())


class _FileLevel(Sequence[Segment]):
    """Level ``k`` of an .mptvc file, its segments read (and CRC-checked) when asked for."""

    def __init__(self, path: Path, header: Header, k: int, start: int) -> None:
        self.path, self.k, self.name = path, k, f"the file {str(path)!r}"
        self.sizes, self.crcs = header.segment_sizes[k], header.segment_crcs[k]
        self.offsets = []
        for z, y in self.sizes:
            self.offsets.append(start)
            start += z + y

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, c):
        if isinstance(c, slice):
            return [self[i] for i in range(*c.indices(len(self)))]
        (z_len, y_len), crcs = self.sizes[c], self.crcs[c]
        with open(self.path, "rb") as f:
            f.seek(self.offsets[c])
            data = f.read(z_len + y_len)
        segment = data[:z_len], data[z_len:]
        for kind, payload, crc, length in zip(KINDS, segment, crcs, (z_len, y_len), strict=True):
            if len(payload) != length or crc32(payload) != crc:
                hint = f" (the levels below it survive: `mptvc truncate --k-max {self.k - 1}`)" if self.k else ""
                raise SegmentCrcError(
                    f"Segment {kind} of level {self.k}, chunk {c} in {self.name} fails its CRC check: the file is "
                    f"damaged{hint}.",
                    self.k,
                    c,
                    kind,
                )
        return segment


def _read_header(path: Path) -> Header:
    """The header of the file at ``path``, reading no more of it than the header (and a little)."""
    size, want = path.stat().st_size, 1 << 16
    with open(path, "rb") as f:
        while True:
            f.seek(0)
            data = f.read(want)
            try:
                return parse_header(data, f"the file {str(path)!r}")
            except TruncatedHeaderError:
                if len(data) >= size:
                    raise
                want *= 4


def open_mptvc(
    path: str | Path,
    *,
    digest: str | None = None,
    config: Mapping[str, Any] | None = None,
    verify: bool = False,
) -> tuple[Compressed, Header, ReadReport]:
    """``read_mptvc`` of a file, reading only its header: the segments of every complete level are
    read when used (``MPTVC.decompress_stream`` reads one chunk's at a time). With ``verify`` every
    segment's CRC is checked up front, one segment in memory at a time. A cut file keeps its
    complete levels, as with ``read_mptvc``; the caller logs ``report.summary()`` if it likes.

    Raises:
        BitstreamError: the subclass names the problem (docs/bitstream.md, "Errors"); a damaged
            segment raises :class:`SegmentCrcError` when it is read (or, with ``verify``, here).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The input file {str(path)!r} does not exist (or is not a file).")
    name = f"the file {str(path)!r}"
    header = _read_header(path)
    if digest is not None or config is not None:
        check_checkpoint(header, digest if digest is not None else header.digest, config or header.config, name)
    size, ends = path.stat().st_size, header.level_ends()
    if size > ends[-1]:
        raise TrailingDataError(
            f"{name[:1].upper() + name[1:]} has {size - ends[-1]} unexpected bytes after its last segment "
            f"(it should end at byte {ends[-1]})."
        )
    complete = sum(end <= size for end in ends)
    if complete == 0:
        raise NoCompleteLevelError(
            f"The file {str(path)!r} is cut at byte {size}, before level 0 ends at byte {ends[0]}, so no level can "
            f"be decoded."
        )
    starts = [header.size, *ends[:-1]]
    levels = [_FileLevel(path, header, k, starts[k]) for k in range(complete)]
    if verify:
        for level in levels:
            for c in range(len(level)):
                level[c]  # reads and checks it
    segments = cast("list[list[Segment]]", levels)  # levels read lazily stand in for the lists
    compressed = Compressed(segments, header.info, intra_period(header.config), header.rate)
    return compressed, header, ReadReport(header.num_levels, complete, size, ends[-1])
