"""Causal streaming: tokens and bytes of live video as its frames arrive, and frames back.

The causal variant of the codec (``CodecConfig.causal``, presets ``*-causal``) restricts every
temporal attention to the present and past token frames (``layers/attention.py``), runs each chunk
at its full length whatever follows (``MPTVC._causal_t_pos``) and detects shot cuts without
lookahead (``scenes.CausalSceneCutStream``). So the symbols of token frame t (frames
``4t .. 4t+3``) are final once those frames have arrived, and they are bit for bit the symbols
``MPTVC.encode`` gives for the whole video: a causal mask gives future keys a weight of exactly
zero, and the tensors keep one shape (a chunk's full length, unknown frames padded), so the float
rounding of the past never changes either. Data flow of :class:`CausalEncoder`::

    push(frames) -> scene ids (causal detector) -> this chunk's frames so far, float (1, 3, <=32, H, W)
      -> every complete token frame: MPTVC._analyze on the chunk so far (padded to its full length)
      -> TokenFrame (symbols of every level) as soon as it is final
      -> when the chunk is complete (or the video ends): its rANS segments of every level (ChunkPacket)

Latency, precisely:

- **tokens**: a token frame's symbols come out as soon as its ``patch_t`` = 4 frames are pushed
  (plus one pass of the analysis transforms over a chunk);
- **bytes**: each level of each chunk is one rANS stream (a chunk's ``(z, y)`` segments), and rANS
  writes a stream backwards from its last symbol, so the bytes of a chunk are final when its last
  token frame is (``chunk_frames`` = 32 frames, 1.07 s at 30 fps), or at :meth:`CausalEncoder.finish`.
  The hyperprior's temporal merge (``HyperpriorConfig.merge[0]`` = 2: one hyper token per two token
  frames) and the context model's previous-frame context sit inside that unit and add no latency;
  neither changes a symbol (tokens never wait for them).

Memory holds one chunk (frames, per-level symbols and latents) plus the video's scene ids (4 bytes
per frame, for the ``.mptvc`` header): flat in the video's length. A push costs one pass of the
analysis over a chunk of the full length whatever it brings, so pushing a token frame at a time
costs up to ``chunk_frames / patch_t`` = 8 passes per chunk where offline encoding costs one
(BENCHMARKS.md, "Causal streaming"); pushes of whole chunks cost what offline encoding does.

:class:`CausalDecoder` mirrors it: token frames (or a chunk's segments) in, frames out, bit for bit
those of ``MPTVC.decode`` / ``decompress``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mptvc_latents.codec import MPTVC, ChunkContexts
from mptvc_latents.level import LevelDecoded
from mptvc_latents.scenes import CausalSceneCutStream
from mptvc_latents.types import Compressed, Padding, VideoInfo

log = logging.getLogger(__name__)

__all__ = [
    "CausalDecoder",
    "CausalEncoder",
    "ChunkPacket",
    "StreamStep",
    "TokenFrame",
    "decode_raw_stream",
    "encode_raw_stream",
    "parse_size",
]


@dataclass(frozen=True)
class TokenFrame:
    """Token frame ``index`` of a video: frames ``start .. start + frames - 1`` (``frames`` < patch_t
    only at the end of a video; 0 for a token frame of end padding alone), the scene id of its first
    frame (the decoder's temporal RoPE position needs it) and ``symbols[k]`` uint8 ``(H', W', C_k)``."""

    index: int
    start: int
    frames: int
    scene_id: int
    symbols: list[np.ndarray]


@dataclass(frozen=True)
class ChunkPacket:
    """The rANS segments ``(z, y)`` of every level of chunk ``index`` (what the ``.mptvc`` file keeps of
    it), with its first token frame, the scene id of each of its token frames and its real frames."""

    index: int
    first_token: int
    scene_ids: tuple[int, ...]
    frames: int
    segments: list[tuple[bytes, bytes]]


@dataclass
class StreamStep:
    """What one push made final: token frames, and the packets of chunks that completed."""

    tokens: list[TokenFrame] = field(default_factory=list)
    packets: list[ChunkPacket] = field(default_factory=list)


def _require_causal(model: MPTVC, what: str) -> None:
    if not model.config.causal:
        raise ValueError(
            f"{what} needs a causal checkpoint (CodecConfig.causal, e.g. mptvc_latents/checkpoints/mptvc-cpu-causal); "
            f"{model.config.name!r} attends to later frames, so its tokens are final only once a whole chunk is known "
            f"(use MPTVC.encode_stream for it)."
        )


def _to_uint8(x: Tensor) -> np.ndarray:
    """``(1, 3, n, H, W)`` in [-1, 1] -> uint8 ``(n, H, W, 3)``, as ``MPTVC.decode`` rounds."""
    return ((x[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


class CausalEncoder:
    """Encodes a video pushed a few frames at a time with a causal checkpoint (module docstring).

    Args:
        model: a causal MPT-VC (``model.config.causal``).
        fps: the frame rate recorded in :attr:`info`.
        entropy: also entropy-code each chunk into a :class:`ChunkPacket` (else tokens only).
        tokens_per_pass: run the analysis once this many token frames of a chunk are waiting (1: each
            token frame as soon as its frames are in; ``chunk_frames / patch_t``: once per chunk, the
            cost of offline encoding). Any value gives the same tokens and bytes; it trades latency
            for throughput.

    ``push(frames)`` takes uint8 ``(n, H, W, 3)`` (or one frame ``(H, W, 3)``), every frame of one
    size, in any split; ``finish()`` after the last. Both return a :class:`StreamStep`. After
    ``finish``, :attr:`info` is the video's ``VideoInfo``: the token frames and packets together
    equal ``model.encode`` and ``model.compress`` of the whole video, bit for bit.
    """

    def __init__(self, model: MPTVC, fps: float = 25.0, *, entropy: bool = True, tokens_per_pass: int = 1) -> None:
        _require_causal(model, "A causal stream encoder")
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}.")
        self.model, self.fps, self.entropy = model, float(fps), entropy
        c = model.config
        self.patch_t, self.chunk_frames = c.patch_t, c.chunk_frames
        chunk_tokens = c.chunk_frames // c.patch_t
        if not (isinstance(tokens_per_pass, int) and 1 <= tokens_per_pass <= chunk_tokens):
            raise ValueError(
                f"tokens_per_pass must be an integer from 1 (lowest latency) to {chunk_tokens} (a pass per chunk), "
                f"got {tokens_per_pass!r}."
            )
        self.tokens_per_pass = tokens_per_pass
        self.scenes = CausalSceneCutStream()
        self.contexts = ChunkContexts(model.intra_period, model.num_levels)
        self.size: tuple[int, int] | None = None
        self.frames = 0  # frames pushed
        self.tokens = 0  # token frames emitted
        self._ids: list[np.ndarray] = []  # scene ids of every frame, a push at a time (for the header)
        self._chunk_ids = np.zeros(self.chunk_frames, np.int32)  # scene ids of this chunk's frames
        self._chunk: Tensor | None = None  # (1, 3, chunk_frames, H_pad, W_pad) float, this chunk's frames
        self._symbols: list[list[Tensor]] = []  # per level, this chunk's emitted token frames (1, C_k, 1, H', W')
        self._bounds: list[list[Tensor]] = []
        self._info: VideoInfo | None = None

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            raise ValueError("The video's info is known only after finish().")
        return self._info

    @property
    def padding(self) -> Padding:
        if self.size is None:
            raise ValueError("The padding is known once the first frame has arrived.")
        m = self.model.config.spatial_multiple
        return Padding(h=-self.size[0] % m, w=-self.size[1] % m)

    def _check(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[1:3]) == 0:
            raise ValueError(f"Video frames must be uint8 of shape (n, H, W, 3), got {frames.dtype} {frames.shape}.")
        if self._info is not None:
            raise ValueError("This stream is finished; make a new CausalEncoder for another video.")
        if self.size is None:
            self.size = (frames.shape[1], frames.shape[2])
        elif frames.shape[1:3] != self.size:
            raise ValueError(
                f"Frame {self.frames} is {frames.shape[2]}x{frames.shape[1]}, but the stream started at "
                f"{self.size[1]}x{self.size[0]}; every frame of a stream must have one size."
            )
        return frames

    def push(self, frames: np.ndarray) -> StreamStep:
        """Add the next frames; returns the token frames (and chunk packets) they made final."""
        frames = self._check(frames)
        step = StreamStep()
        if frames.shape[0] == 0:
            return step
        self.scenes.push(frames)
        ids = self.scenes.scene_ids(self.frames, self.frames + len(frames))
        self._ids.append(ids)
        done = 0
        while done < len(frames):  # fill the chunk buffer, coding whenever a chunk is full
            offset = self.frames % self.chunk_frames
            n = min(len(frames) - done, self.chunk_frames - offset)
            self._store(frames[done : done + n], offset)
            self._chunk_ids[offset : offset + n] = ids[done : done + n]
            self.frames += n
            done += n
            if self.frames % self.chunk_frames == 0:
                self._code(self.chunk_frames, self.chunk_frames // self.patch_t, step)
        in_chunk = self.frames % self.chunk_frames
        waiting = in_chunk // self.patch_t - (self.tokens - (self.frames - in_chunk) // self.patch_t)
        if in_chunk and waiting >= self.tokens_per_pass:
            self._code(in_chunk, in_chunk // self.patch_t, step)
        return step

    def finish(self) -> StreamStep:
        """The video has ended: code its last token frames (padded as ``MPTVC.encode`` pads) and chunk."""
        if self._info is not None:
            raise ValueError("This stream is finished already.")
        if self.frames == 0:
            raise ValueError("The stream is empty: no frame was pushed before finish().")
        step = StreamStep()
        pad_t = -self.frames % self.model.config.temporal_multiple
        if pad_t:  # the end padding repeats the last frame, as MPTVC._prepare does
            assert self._chunk is not None
            offset = self.frames % self.chunk_frames
            last = self._chunk[:, :, (offset - 1) % self.chunk_frames]
            self._chunk[:, :, offset : offset + pad_t] = last[:, :, None]
            self._chunk_ids[offset : offset + pad_t] = self._chunk_ids[offset - 1]
        ids = np.concatenate(self._ids + [np.full(pad_t, self._ids[-1][-1], np.int32)]).astype(np.int32)
        self._ids = []
        in_chunk = (self.frames - 1) % self.chunk_frames + 1 + pad_t
        self._code(in_chunk, in_chunk // self.patch_t, step, last=True)
        pad = self.padding
        assert self.size is not None
        self._info = VideoInfo(self.frames, self.size[0], self.size[1], self.fps, Padding(pad_t, pad.h, pad.w), ids)
        return step

    def _store(self, frames: np.ndarray, offset: int) -> None:
        """Frames ``(n, H, W, 3)`` into the chunk buffer at ``offset``, as ``MPTVC._prepare`` converts and pads."""
        if self._chunk is None or offset == 0:
            pad = self.padding
            height, width = self.size[0] + pad.h, self.size[1] + pad.w  # type: ignore[index]
            self._chunk = torch.zeros(1, 3, self.chunk_frames, height, width, device=self.model.device)
        x = torch.from_numpy(np.require(frames, requirements=["C", "W"])).to(
            self.model.device
        )  # copies read-only input
        x = x.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0  # (n, H, W, 3) -> (1, 3, n, H, W)
        pad = self.padding
        x = F.pad(x, (0, pad.w, 0, pad.h, 0, 0), mode="replicate")
        self._chunk[:, :, offset : offset + len(frames)] = x

    @torch.no_grad()
    def _code(self, in_chunk: int, complete: int, step: StreamStep, last: bool = False) -> None:
        """Emit the chunk's token frames ``tokens_done .. complete - 1``; entropy-code the chunk when it
        is full (``in_chunk == chunk_frames``) or ``last``."""
        chunk_start = (self.frames - 1) // self.chunk_frames * self.chunk_frames
        first = self.tokens - chunk_start // self.patch_t  # token frames of this chunk emitted already
        if complete > first:
            assert self._chunk is not None
            frames = complete * self.patch_t
            ids = self._chunk_ids[:frames]
            t_pos = self.model._t_pos(frames, ids)
            symbols, bounds = self.model._analyze(self._chunk[:, :, :frames], t_pos)
            if first == 0:
                self._symbols = [[] for _ in symbols]
                self._bounds = [[] for _ in symbols]
            for k, (s, b) in enumerate(zip(symbols, bounds, strict=True)):
                self._symbols[k].append(s[:, :, first:complete])
                self._bounds[k].append(b[:, :, first:complete])
            for t in range(first, complete):
                start = chunk_start + t * self.patch_t
                step.tokens.append(
                    TokenFrame(
                        index=self.tokens,
                        start=start,
                        frames=max(0, min(self.patch_t, self.frames - start)),
                        scene_id=int(ids[t * self.patch_t]),
                        symbols=[
                            s[0, :, t].permute(1, 2, 0).cpu().numpy() for s in symbols
                        ],  # (C_k, H', W') -> (H', W', C_k)
                    )
                )
                self.tokens += 1
        if (in_chunk == self.chunk_frames or last) and self._symbols and self.entropy:
            self._pack(chunk_start, in_chunk, step)

    def _pack(self, chunk_start: int, in_chunk: int, step: StreamStep) -> None:
        symbols = [torch.cat(s, dim=2) for s in self._symbols]  # (1, C_k, T', H', W')
        bounds = [torch.cat(b, dim=2) for b in self._bounds]
        c = chunk_start // self.chunk_frames
        segments = self.model._compress_chunk(c, symbols, bounds, self.contexts)
        ids = self._chunk_ids[: in_chunk : self.patch_t]
        real = min(in_chunk, self.frames - chunk_start)
        step.packets.append(ChunkPacket(c, chunk_start // self.patch_t, tuple(int(i) for i in ids), real, segments))
        self._symbols, self._bounds = [], []


class CausalDecoder:
    """Decodes token frames (or chunk packets) of a causal checkpoint as they arrive.

    Args:
        model: the causal MPT-VC that made the tokens.
        height, width: the video's frame size.
        k_max: decode levels ``0 .. k_max`` (default: all).

    ``push(token_frames)`` takes :class:`TokenFrame` s in order (one or several) and returns their
    uint8 frames ``(n, H, W, 3)``; ``push_packet(packet)`` entropy-decodes a :class:`ChunkPacket`
    first. Frames equal ``model.decode`` / ``model.decompress`` of the whole video, bit for bit.
    Memory holds one chunk's symbols.
    """

    def __init__(self, model: MPTVC, height: int, width: int, k_max: int | None = None) -> None:
        _require_causal(model, "A causal stream decoder")
        self.model, self.height, self.width = model, int(height), int(width)
        self.k_max = model._check_k_max(k_max, model.num_levels)
        c = model.config
        self.patch_t, self.chunk_tokens = c.patch_t, c.chunk_frames // c.patch_t
        m = c.spatial_multiple
        self.grid = ((self.height + -self.height % m) // c.patch, (self.width + -self.width % m) // c.patch)
        self.contexts = ChunkContexts(model.intra_period, model.num_levels)
        self.tokens = 0  # token frames decoded
        self._symbols: list[list[Tensor]] = []  # per level, this chunk's token frames (1, C_k, 1, H', W')
        self._scenes: list[int] = []  # scene id of each of this chunk's token frames

    def push(self, token_frames: TokenFrame | Sequence[TokenFrame]) -> np.ndarray:
        """Decode the next token frames; returns their frames ``(n, H, W, 3)`` uint8."""
        items = [token_frames] if isinstance(token_frames, TokenFrame) else list(token_frames)
        out: list[np.ndarray] = []
        batch: list[TokenFrame] = []
        for item in items:
            if item.index != self.tokens + len(batch):
                raise ValueError(
                    f"Token frames are decoded in order: expected token frame {self.tokens + len(batch)}, "
                    f"got {item.index}."
                )
            self._check_symbols(item)
            batch.append(item)
            if (self.tokens + len(batch)) % self.chunk_tokens == 0:  # the chunk is complete
                out.append(self._decode(batch))
                batch = []
        if batch:
            out.append(self._decode(batch))
        return np.concatenate(out) if out else np.zeros((0, self.height, self.width, 3), np.uint8)

    def push_packet(self, packet: ChunkPacket) -> np.ndarray:
        """Entropy-decode chunk ``packet`` (levels 0 .. k_max of it) and decode its frames. A decoder
        takes packets or token frames, not both: the entropy decoder's context carries from packet to packet."""
        c = self.model.config
        if packet.first_token != self.tokens or self.tokens % self.chunk_tokens:
            raise ValueError(
                f"Chunk packets are decoded in order and whole: expected the chunk starting at token frame "
                f"{self.tokens}, got chunk {packet.index} starting at {packet.first_token}."
            )
        levels = len(packet.segments)
        if levels <= self.k_max:
            raise ValueError(f"The packet holds {levels} levels but the decoder decodes levels 0..{self.k_max}.")
        tokens = len(packet.scene_ids)
        decoded: list[np.ndarray] = []
        frames_out: list[TokenFrame] = []
        for k in range(self.k_max + 1):
            context = self.contexts.level(packet.index, k, decoded[k - 1] if k else None)
            shape = (c.levels[k].latent_channels, tokens, *self.grid)
            s = self.model.level(k).decompress(packet.segments[k], shape, context)  # (1, C_k, T', H', W')
            decoded.append(s[0].cpu().numpy())
            self.contexts.done(packet.index, k, decoded[-1])
        for t in range(tokens):
            start = (packet.first_token + t) * c.patch_t
            frames = max(0, min(c.patch_t, packet.index * c.chunk_frames + packet.frames - start))
            symbols = [
                np.ascontiguousarray(d[:, t].transpose(1, 2, 0)) for d in decoded
            ]  # (C_k, H', W') -> (H', W', C_k)
            frames_out.append(TokenFrame(packet.first_token + t, start, frames, packet.scene_ids[t], symbols))
        return self.push(frames_out)

    def _check_symbols(self, item: TokenFrame) -> None:
        if len(item.symbols) <= self.k_max:
            raise ValueError(
                f"Token frame {item.index} holds {len(item.symbols)} levels but the decoder decodes levels "
                f"0..{self.k_max}."
            )
        for k in range(self.k_max + 1):
            want = (*self.grid, self.model.config.levels[k].latent_channels)
            if item.symbols[k].shape != want:
                raise ValueError(
                    f"Token frame {item.index} level {k} has shape {item.symbols[k].shape}, expected {want} for "
                    f"{self.width}x{self.height} frames."
                )

    @torch.no_grad()
    def _decode(self, batch: list[TokenFrame]) -> np.ndarray:
        """Add ``batch`` (token frames of one chunk) and decode the chunk so far; the new frames."""
        first = self.tokens % self.chunk_tokens
        if first == 0:
            self._symbols = [[] for _ in range(self.k_max + 1)]
            self._scenes = []
        device = self.model.device
        for item in batch:
            for k in range(self.k_max + 1):
                s = torch.from_numpy(np.ascontiguousarray(item.symbols[k])).to(device)
                self._symbols[k].append(s.permute(2, 0, 1)[None, :, None])  # (H', W', C_k) -> (1, C_k, 1, H', W')
            self._scenes.append(item.scene_id)
        tokens = len(self._scenes)
        ids = np.repeat(np.asarray(self._scenes, np.int32), self.patch_t)  # the first frame's id is what counts
        t_pos = self.model._t_pos(tokens * self.patch_t, ids)
        chunk = [torch.cat(s, dim=2) for s in self._symbols]  # (1, C_k, T', H', W')

        def stored(k: int, coarser: LevelDecoded | None) -> Tensor:
            return chunk[k]

        x = self.model._code_chunk(t_pos, self.k_max + 1, stored)  # (1, 3, T, H_pad, W_pad)
        x = x[:, :, first * self.patch_t :, : self.height, : self.width]  # the new token frames, padding cropped
        self.tokens += len(batch)
        frames = [_to_uint8(x[:, :, i * self.patch_t :][:, :, : item.frames]) for i, item in enumerate(batch)]
        return np.concatenate(frames)


# --------------------------------------------------------------------------- raw rgb24 (encode/decode --stream)


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> ``(width, height)``; ValueError names the expected form."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"A frame size is WIDTHxHEIGHT in pixels, e.g. 640x360, got {text!r}.")
    return int(parts[0]), int(parts[1])


def _read_full(source: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes: fewer only at the end of the input (pipes return short reads)."""
    pieces, got = [], 0
    while got < size:
        piece = source.read(size - got)
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


def encode_raw_stream(
    model: MPTVC,
    source: BinaryIO,
    size: tuple[int, int],
    fps: float,
    dst: Path,
    progress: Callable[[int], object] | None = None,
) -> tuple[VideoInfo, int]:
    """Encode raw rgb24 frames of ``size`` = (width, height) read from ``source`` (e.g. standard input)
    as they arrive, with a causal checkpoint, into the ``.mptvc`` file ``dst``.

    Each frame is pushed to a :class:`CausalEncoder` as soon as its bytes are read, and each chunk's
    segments go to a temporary file beside ``dst`` (``formats.spool``) when the chunk is final; the
    rate-ordered file is written when the input ends. The input may end anywhere: if it ends inside a
    frame (or is interrupted with Ctrl-C), the complete frames before it are still written to ``dst``
    as a valid file, and then ValueError says how many bytes of the partial frame were dropped.
    Returns the ``VideoInfo`` and the file's size.
    """
    from mptvc_latents.files import atomic_output
    from mptvc_latents.formats.spool import SegmentSpool

    width, height = size
    frame_bytes = width * height * 3
    encoder = CausalEncoder(model, fps)
    problem: str | None = None
    with atomic_output(dst) as tmp, SegmentSpool(model.num_levels, dst.parent) as spool:

        def keep(step: StreamStep) -> None:
            for packet in step.packets:
                for k, segment in enumerate(packet.segments):
                    spool[k].append(segment)

        while True:
            try:
                data = _read_full(source, frame_bytes)
            except KeyboardInterrupt:
                problem = f"The input was interrupted after {encoder.frames} complete frames"
                break
            if len(data) < frame_bytes:
                if data:
                    problem = (
                        f"The input ended inside frame {encoder.frames}: {len(data)} of its {frame_bytes} bytes "
                        f"({width}x{height} rgb24) arrived"
                    )
                break
            keep(encoder.push(np.frombuffer(data, np.uint8).reshape(height, width, 3)))
            if progress is not None:
                progress(1)
        if encoder.frames == 0:
            detail = f" ({problem.split(':')[-1].strip()})" if problem else ""
            raise ValueError(f"The input holds no complete {width}x{height} rgb24 frame{detail}; nothing was written.")
        keep(encoder.finish())
        with open(tmp, "wb") as out:
            written = spool.write(out, encoder.info, model.config.to_dict(), model.tables_digest())
    if problem is not None:
        raise ValueError(f"{problem}; the {encoder.frames} complete frames before it are coded in {str(dst)!r}.")
    return encoder.info, written


def decode_raw_stream(model: MPTVC, compressed: Compressed, out: BinaryIO, k_max: int) -> int:
    """Write the frames of ``compressed`` (``formats.spool.open_mptvc``) to ``out`` as raw rgb24, a
    chunk at a time as each decodes (flushed), levels ``0 .. k_max``; returns the frames written."""
    written = 0
    for frames in model.decompress_stream(compressed, k_max):
        out.write(np.ascontiguousarray(frames).tobytes())
        out.flush()
        written += len(frames)
    return written
