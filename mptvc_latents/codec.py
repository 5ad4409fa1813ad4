"""MPT-VC: the conv-free neural video codec (encode/decode, compress/decompress, tiling).

Data flow of one chunk of ``chunk_frames`` frames (K pyramid levels, Burt & Adelson 1983;
FSQ, Mentzer et al. 2023; scale hyperprior, Ballé et al. 2018)::

    uint8 (T, H, W, 3) -> x in [-1, 1] (1, 3, T, H, W), padded -> Gaussian levels G_0 .. G_{K-1}
    for k in 0 .. K-1:   levels[k] is a PyramidLevel (level.py)    (context_k = up(x_hat_{k-1}))
        y_k      = g_a^k(G_k - context_k, context_k)    (1, C_k, T', H', W')
        symbols  = FSQ_k(y_k)                            uint8 in [0, L_k)      -> tokens / zarr
        z_k, scales_hat_k = hyperprior_k(y_k)            -> rANS segments (z, y) -> .mptvc
        x_hat_k  = context_k + g_s^k(codes_k, context_k, h_{k-1})
    decode(k_max) runs g_s^0 .. g_s^{k_max} and upsamples x_hat_{k_max} to full resolution.

One loop (``_walk``) walks the levels for every inference path: the encoder takes each
level's symbols from ``analyze``, the decoder from the tokens or from ``decompress``.

Level k's encoder codes what the decoder of the levels below it got wrong (closed loop),
so any prefix of levels decodes on its own: the Matryoshka property. Frames larger than
the canonical tile run through the transformers in overlapping tiles blended with a
partition of unity (``tiling.py``). Chunks are independent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from mptvc_latents.config import CodecConfig
from mptvc_latents.entropy.context import LevelContext
from mptvc_latents.hub import StrictHubMixin
from mptvc_latents.layers.rope3d import temporal_positions
from mptvc_latents.level import LevelDecoded, PyramidLevel, Runner
from mptvc_latents.pretrained import default_checkpoint_dir
from mptvc_latents.pyramid import LaplacianPyramid, upsample
from mptvc_latents.scenes import detect_scene_cuts
from mptvc_latents.streaming import DEFAULT_LOOKAHEAD, ChunkedVideo, CodedChunk, CodedStream, FrameChunk
from mptvc_latents.tiling import run_tiled
from mptvc_latents.types import Compressed, Padding, Tokens, VideoInfo

if TYPE_CHECKING:
    from mptvc_latents.ratecontrol import RateTarget

log = logging.getLogger(__name__)

__all__ = ["MPTVC", "CodecOutput", "format1_name", "format2_name"]


@dataclass
class CodecOutput:
    """Training forward: reconstructions and targets per level (at the level's resolution),
    and the exact integer-table bits per level (with straight-through gradients)."""

    recon: list[Tensor]
    targets: list[Tensor]
    bits_y: list[Tensor]  # (B,) per level
    bits_z: list[Tensor]  # (B,) per level


Progress = Callable[[int], object]
SymbolSource = Callable[[int, LevelDecoded | None], Tensor]
"""Gives level k's symbols ``(1, C_k, T', H', W')`` of a chunk, knowing the decoded level below."""


def _frames_to_unit(frames: np.ndarray, device: torch.device) -> Tensor:
    """uint8 ``(T, H, W, 3)`` -> ``(1, 3, T, H, W)`` in [-1, 1], converted in place (one float copy)."""
    x = torch.from_numpy(frames).to(device).permute(3, 0, 1, 2)[None].float()  # (1, 3, T, H, W)
    return x.div_(127.5).sub_(1.0)


def _unit_to_frames(x: Tensor) -> np.ndarray:
    """``(1, 3, T, H, W)`` in [-1, 1] -> uint8 ``(T, H, W, 3)``, rounded in place (one float copy)."""
    y = x[0].permute(1, 2, 3, 0).clamp(-1, 1)  # (T, H, W, 3)
    return y.add_(1).mul_(127.5).round_().to(torch.uint8).cpu().numpy()


def _ticking(chunks: list[slice], progress: Progress | None) -> Iterator[slice]:
    """Yield the chunks, calling ``progress(1)`` after each one is done."""
    for chunk in chunks:
        yield chunk
        if progress is not None:
            progress(1)


def _encode_config(config: CodecConfig) -> dict:
    return config.to_dict()


# Checkpoint names: format 1 (up to 0.1.0) kept a level in four parallel ModuleLists
# (``g_a.0.*``, ``fsq.0.*``, ``hyperprior.0.*``, ``g_s.0.*``); format 2 keeps one module per level
# (``levels.0.g_a.*``, ...). Old checkpoints load through this map; the digests name tensors
# by their format-1 names so that files and stores written before keep their digests.
_PARTS = "g_a|g_s|fsq|hyperprior"
_FORMAT1_KEY = re.compile(rf"^({_PARTS})\.(\d+)\.(.+)$")
_FORMAT2_KEY = re.compile(rf"^levels\.(\d+)\.({_PARTS})\.(.+)$")


def format2_name(name: str) -> str:
    """The current state-dict name of a tensor saved under a format-1 name (others unchanged)."""
    m = _FORMAT1_KEY.match(name)
    return f"levels.{m[2]}.{m[1]}.{m[3]}" if m else name


def format1_name(name: str) -> str:
    """The format-1 name of a current state-dict name (the inverse of :func:`format2_name`)."""
    m = _FORMAT2_KEY.match(name)
    return f"{m[2]}.{m[1]}.{m[3]}" if m else name


class ChunkContexts:
    """What the context entropy model of each level knows from earlier chunks: the last token
    frame of every level in the previous chunk, forgotten at each intra chunk (every
    ``intra_period``-th). With ``intra_period=None`` (the scale hyperprior alone) there is none."""

    def __init__(self, intra_period: int | None, num_levels: int) -> None:
        self.intra_period = intra_period
        self.chunk = -1
        self.previous: list[np.ndarray | None] = [None] * num_levels  # (C_k, H', W'): chunk - 1
        self.current: list[np.ndarray | None] = [None] * num_levels  # (C_k, H', W'): this chunk

    def _at(self, c: int) -> None:
        if c != self.chunk:
            if c != self.chunk + 1:
                raise ValueError(f"Chunks are coded in order: chunk {c} cannot follow chunk {self.chunk}.")
            self.previous, self.current = self.current, [None] * len(self.current)
            self.chunk = c

    def level(self, c: int, k: int, coarser: np.ndarray | None) -> LevelContext | None:
        """The context of level ``k`` in chunk ``c`` given level k-1's symbols of the chunk."""
        if self.intra_period is None:
            return None
        self._at(c)
        intra = c % self.intra_period == 0
        return LevelContext(
            coarser=coarser,
            previous=None if intra else self.previous[k],
            coarser_previous=None if intra or k == 0 else self.previous[k - 1],
        )

    def done(self, c: int, k: int, symbols: np.ndarray) -> None:
        """Level ``k``'s symbols ``(C_k, T', H', W')`` of chunk ``c``, just coded."""
        self._at(c)
        self.current[k] = symbols[:, -1]


class MPTVC(
    nn.Module,
    StrictHubMixin,
    library_name="mptvc-latents",
    tags=["video", "compression", "tokenizer"],
    coders={CodecConfig: (_encode_config, CodecConfig.from_dict)},
):
    """The MPT-VC codec: K :class:`PyramidLevel` modules. Build it from a :class:`CodecConfig`
    (see ``presets.py``), or load one with ``MPTVC.from_pretrained(folder)`` (default: the
    checkpoint shipped in the package)."""

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = CodecConfig.from_dict(config)
        self.config = config
        self.pyramid = LaplacianPyramid(config.pyramid)
        self.levels = nn.ModuleList(PyramidLevel(config, k) for k in range(config.num_levels))
        self._register_load_state_dict_pre_hook(_rename_format1_keys)

    @classmethod
    def default_checkpoint_dir(cls) -> Path:
        return default_checkpoint_dir()

    def level(self, k: int) -> PyramidLevel:
        """Pyramid level ``k`` (``levels[k]``, typed)."""
        level = self.levels[k]
        assert isinstance(level, PyramidLevel)
        return level

    def pyramid_levels(self) -> list[PyramidLevel]:
        """Every pyramid level, coarse to fine (``levels``, typed)."""
        return [self.level(k) for k in range(self.num_levels)]

    # ------------------------------------------------------------------ bookkeeping

    @property
    def device(self) -> torch.device:
        """Where the weights are; encode/decode move their inputs there and return numpy on the CPU."""
        return next(self.parameters()).device

    @property
    def num_levels(self) -> int:
        return self.config.num_levels

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of the backbone (g_a, g_s) and the entropy model (hyperpriors)."""
        backbone = sum(
            p.numel() for level in self.pyramid_levels() for m in (level.g_a, level.g_s) for p in m.parameters()
        )
        entropy = sum(p.numel() for level in self.pyramid_levels() for p in level.hyperprior.parameters())
        return {"backbone": backbone, "entropy": entropy, "total": backbone + entropy}

    def _named_tensors(self) -> list[tuple[str, Tensor]]:
        """The state dict under format-1 names, sorted: what the digests are computed over."""
        return sorted((format1_name(name), t) for name, t in self.state_dict().items())

    def tables_digest(self, context: bool = True) -> str:
        """sha256 of everything that decides how symbols are entropy-coded: every integer CDF
        table and the hyperprior weights that choose among them (h_s, the z prior). A stream
        decodes only with a checkpoint of the same digest; the tables alone are fixed by the
        config, so they could not tell two checkpoints of one preset apart.

        ``context=False`` leaves the context model's tables out: the digest of the streams this
        checkpoint codes with the hyperprior alone (container v2), equal to that of the same
        checkpoint before a context model was fitted to it.
        """
        h = hashlib.sha256()
        for name, buf in self._named_tensors():
            if not context and ".context." in name:
                continue
            is_table = buf.dtype in (torch.int32, torch.int64) and name.rsplit(".", 1)[-1] in (
                "cdfs",
                "cdf_lengths",
                "offsets",
            )
            if is_table or (name.startswith("hyperprior.") and buf.is_floating_point()):
                h.update(name.encode())
                h.update(buf.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def weights_digest(self) -> str:
        """sha256 over every tensor (names, dtypes and bytes): identifies the checkpoint that made
        a set of tokens, since the symbols depend on the encoder's weights too. The context
        model's tables are left out: they change how symbols are coded, never the symbols, so
        token stores stay valid when a context model is fitted. The causal variant makes other tokens
        from the same weights, so it is marked too (non-causal digests are as they always were)."""
        h = hashlib.sha256()
        if self.config.causal:
            h.update(b"causal")
        for name, tensor in self._named_tensors():
            if ".context." in name:
                continue
            h.update(name.encode())
            h.update(str(tensor.dtype).encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    @property
    def intra_period(self) -> int | None:
        """Chunks between restarts of temporal context when this model compresses (the context
        model's ``intra_period``); ``None`` when it codes with the hyperprior alone."""
        return None if self.config.context is None else self.config.context.intra_period

    def file_identity(self, file_config: dict) -> tuple[str, dict]:
        """The tables digest and config a file with ``file_config`` carries if this checkpoint
        wrote it: a file without a context model (container v2) is checked against the
        checkpoint without its context tables, so files from before the context model decode."""
        if "context" in file_config or self.config.context is None:
            return self.tables_digest(), self.config.to_dict()
        return self.tables_digest(context=False), dataclasses.replace(self.config, context=None).to_dict()

    def set_inference_dtype(self, dtype: torch.dtype) -> MPTVC:
        """Run the transformers in ``dtype`` (e.g. bf16); FSQ and the entropy paths stay fp32.

        Only the weights are cast: ``Module.to`` would also cast the RoPE's float64 frequency
        buffers, which must stay float64 (``layers/rope3d.py``).
        """
        for level in self.pyramid_levels():
            for transform in (level.g_a, level.g_s):
                for param in transform.transformer.parameters():
                    param.data = param.data.to(dtype)
        return self

    def set_training_autocast(self, dtype: torch.dtype | None) -> MPTVC:
        """Train the transformers under ``torch.autocast`` in ``dtype`` (e.g. bf16; ``None``: off).

        Weights and optimizer state stay fp32; the RoPE rotation, the attention softmax, FSQ, the
        rate and the entropy model stay fp32 (the hyperprior disables autocast itself). Inference
        is unaffected by this switch: ``set_inference_dtype`` casts the weights instead.
        """
        if dtype is not None and dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f"Autocast runs in bfloat16 or float16, got {dtype}.")
        for level in self.pyramid_levels():
            for transform in (level.g_a, level.g_s):
                transform.transformer.autocast = dtype
        return self

    def _runner(self) -> Runner:
        c = self.config
        tile = (c.tile[0] // c.patch, c.tile[1] // c.patch)
        overlap = (c.tile_overlap[0] // c.patch, c.tile_overlap[1] // c.patch)
        return partial(run_tiled, tile=tile, overlap=overlap, margin=c.reach)

    def _t_pos(self, frames: int, scene_ids: Tensor | np.ndarray | None) -> Tensor:
        t_pos = temporal_positions(
            frames // self.config.patch_t, scene_ids, theta_jump=self.config.theta_jump, patch_t=self.config.patch_t
        )  # float64: the RoPE reduces phases mod 2 pi before casting
        return t_pos.to(self.device)

    def _check_clip(self, x: Tensor) -> None:
        c = self.config
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError(f"The codec expects video of shape (B, 3, T, H, W), got {tuple(x.shape)}.")
        if not x.is_floating_point():
            raise ValueError(
                f"The codec expects float video in [-1, 1], got dtype {x.dtype} (encode() converts uint8)."
            )
        t, h, w = x.shape[2:]
        if t % c.temporal_multiple or h % c.spatial_multiple or w % c.spatial_multiple:
            raise ValueError(
                f"A clip of {t} frames of {h}x{w} does not fit the token grid: frames must be a multiple of "
                f"{c.temporal_multiple} and height and width multiples of {c.spatial_multiple} (encode() pads for you)."
            )

    # ------------------------------------------------------------------ training path

    def forward(self, x: Tensor, scene_ids: Tensor | None = None, k_max: int | None = None) -> CodecOutput:
        """Training/evaluation pass on float video ``x (B, 3, T, H, W)`` in [-1, 1] (sizes on the grid)."""
        self._check_clip(x)
        k_max = self._check_k_max(k_max, self.num_levels)
        t_pos = self._t_pos(x.shape[2], scene_ids)
        targets = self.pyramid.gaussian(x)
        out = CodecOutput([], targets[: k_max + 1], [], [])
        coarser: LevelDecoded | None = None
        for k in range(k_max + 1):
            level_out = self.level(k)(targets[k], coarser, t_pos)
            coarser = level_out.decoded
            out.recon.append(coarser.x_hat)
            out.bits_y.append(level_out.bits_y)
            out.bits_z.append(level_out.bits_z)
        return out

    # ------------------------------------------------------------------ inference on one chunk

    @torch.no_grad()
    def _code_chunk(self, t_pos: Tensor, levels: int, symbols_of: SymbolSource) -> Tensor:
        """Walk levels ``0 .. levels-1`` of one padded chunk: ``symbols_of(k, coarser)`` gives
        level k's symbols (the encoder analyzes, the decoder reads them), and each level is
        decoded for the next one. Returns the chunk at full resolution ``(1, 3, T, H, W)``."""
        tokens, t_pos = t_pos.shape[-1], self._causal_t_pos(t_pos)
        if t_pos.shape[-1] > tokens:  # causal: the chunk's full length, later token frames padded

            def padded(k: int, coarser: LevelDecoded | None, source: SymbolSource = symbols_of) -> Tensor:
                s = source(k, coarser)  # (1, C_k, T', H', W')
                return torch.cat([s, s[:, :, -1:].expand(-1, -1, t_pos.shape[-1] - tokens, -1, -1)], dim=2)

            symbols_of = padded
        decoded = self._walk(t_pos, levels, symbols_of, reconstruct=True)
        assert decoded is not None
        # Cropped after upsampling: its float rounding, too, can depend on the number of frames.
        return upsample(decoded.x_hat, self.num_levels - levels)[:, :, : tokens * self.config.patch_t]

    def _causal_t_pos(self, t_pos: Tensor) -> Tensor:
        """The causal variant runs every chunk at its full length, ``chunk_frames / patch_t`` token
        frames, so that a token frame's values never depend on how many frames follow it in the
        tensor (float rounding can depend on shapes): ``t_pos (T',)`` is extended with copies of its
        last position (masked out by the causal attention). Unchanged for the non-causal codec."""
        full = self.config.chunk_frames // self.config.patch_t
        if not self.config.causal or t_pos.shape[-1] >= full:
            return t_pos
        return torch.cat([t_pos, t_pos[..., -1:].expand(*t_pos.shape[:-1], full - t_pos.shape[-1])], dim=-1)

    def _walk(self, t_pos: Tensor, levels: int, symbols_of: SymbolSource, reconstruct: bool) -> LevelDecoded | None:
        """The one loop over the levels (see :meth:`_code_chunk`); the last level is decoded only
        when ``reconstruct`` (the encoder needs the levels below the last, never the last)."""
        runner = self._runner()
        coarser: LevelDecoded | None = None
        for k in range(levels):
            symbols = symbols_of(k, coarser)
            if k + 1 < levels or reconstruct:
                coarser = self.level(k).synthesize(symbols, coarser, t_pos, runner)
        return coarser

    def _analyze(self, x: Tensor, t_pos: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Closed-loop analysis of one padded chunk ``x (1, 3, T, H, W)``: per level the uint8
        symbols and the bounded latents the entropy model reads, ``(1, C_k, T', H', W')``."""
        tokens, t_pos = t_pos.shape[-1], self._causal_t_pos(t_pos)
        if t_pos.shape[-1] > tokens:  # causal: the chunk's full length (see _causal_t_pos)
            extra = (t_pos.shape[-1] - tokens) * self.config.patch_t
            x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, extra), mode="replicate")
        targets = self.pyramid.gaussian(x)
        runner = self._runner()
        symbols: list[Tensor] = []
        bounds: list[Tensor] = []

        def analyze(k: int, coarser: LevelDecoded | None) -> Tensor:
            s, b = self.level(k).analyze(targets[k], coarser, t_pos, runner)
            symbols.append(s[:, :, :tokens])
            bounds.append(b[:, :, :tokens])
            return s

        self._walk(t_pos, self.num_levels, analyze, reconstruct=False)
        return symbols, bounds

    # ------------------------------------------------------------------ whole videos

    def _prepare(self, video: np.ndarray, fps: float) -> tuple[Tensor, VideoInfo]:
        video = np.asarray(video)
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"Video must be uint8 of shape (T, H, W, 3), got {video.dtype} {video.shape}.")
        if min(video.shape[:3]) == 0:
            raise ValueError(f"The video is empty: shape {video.shape}.")
        t, h, w = video.shape[:3]
        c = self.config
        pad = Padding(t=-t % c.temporal_multiple, h=-h % c.spatial_multiple, w=-w % c.spatial_multiple)
        scenes = detect_scene_cuts(video, causal=c.causal) if t > 1 else np.zeros(1, np.int32)
        scenes = np.concatenate([scenes, np.full(pad.t, scenes[-1], np.int32)]).astype(np.int32)
        video = np.ascontiguousarray(video)  # torch cannot wrap negative strides, e.g. BGR -> RGB as video[..., ::-1]
        x = _frames_to_unit(video, self.device)  # (1, 3, T, H, W)
        x = torch.nn.functional.pad(x, (0, pad.w, 0, pad.h, 0, pad.t), mode="replicate")
        return x, VideoInfo(t, h, w, float(fps), pad, scenes)

    def _chunks(self, info: VideoInfo) -> list[slice]:
        total = info.padded_shape[0]
        step = self.config.chunk_frames
        return [slice(s, min(s + step, total)) for s in range(0, total, step)]

    def _finish(self, x: Tensor, info: VideoInfo) -> np.ndarray:
        x = x[:, :, : info.frames, : info.height, : info.width]
        return _unit_to_frames(x)

    def num_chunks(self, frames: int) -> int:
        """How many chunks a video of ``frames`` frames is coded in (for progress bars)."""
        padded = frames + (-frames % self.config.temporal_multiple)
        return -(-padded // self.config.chunk_frames)

    @torch.no_grad()
    def encode(self, video: np.ndarray, fps: float = 25.0, progress: Progress | None = None) -> Tokens:
        """uint8 video ``(T, H, W, 3)`` of any size -> FSQ symbols of every level (no entropy coding).

        ``progress`` is called once after each chunk (e.g. ``tqdm.update``).
        """
        x, info = self._prepare(video, fps)
        per_level: list[list[np.ndarray]] = [[] for _ in range(self.num_levels)]
        for chunk in _ticking(self._chunks(info), progress):
            t_pos = self._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            symbols, _ = self._analyze(x[:, :, chunk], t_pos)
            for k, s in enumerate(symbols):
                per_level[k].append(s[0].permute(1, 2, 3, 0).cpu().numpy())  # (C_k, T', H', W') -> (T', H', W', C_k)
        return Tokens([np.concatenate(chunks) for chunks in per_level], info)

    @torch.no_grad()
    def decode(self, tokens: Tokens, k_max: int | None = None, progress: Progress | None = None) -> np.ndarray:
        """Tokens -> uint8 video ``(T, H, W, 3)`` from levels ``0 .. k_max`` (default: all)."""
        k_max = self._check_k_max(k_max, len(tokens.symbols))
        info, pt = tokens.info, self.config.patch_t
        out = []
        for chunk in _ticking(self._chunks(info), progress):
            t_pos = self._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            grid = slice(chunk.start // pt, chunk.stop // pt)

            def stored(k: int, coarser: LevelDecoded | None, grid: slice = grid) -> Tensor:
                s = np.ascontiguousarray(tokens.symbols[k][grid])  # (T', H', W', C_k)
                return torch.from_numpy(s).to(self.device).permute(3, 0, 1, 2)[None]  # (1, C_k, T', H', W')

            out.append(self._code_chunk(t_pos, tokens.chunk_levels(grid, k_max + 1), stored))
        return self._finish(torch.cat(out, dim=2), info)

    @torch.no_grad()
    def compress(
        self,
        video: np.ndarray,
        fps: float = 25.0,
        progress: Progress | None = None,
        *,
        target: RateTarget | None = None,
    ) -> Compressed:
        """uint8 video -> rANS segments per level and chunk (rate-ordered by level).

        ``target`` (``ratecontrol.RateTarget(bpp=...)`` or ``(psnr=...)``): choose per chunk the
        levels and token frames sent to meet it (``ratecontrol.py``; ``progress`` then counts frames,
        once per encoder pass); the result's ``rate`` records the choice (container v4).
        """
        if target is not None:
            from mptvc_latents.ratecontrol import compress_to_target

            return compress_to_target(self, lambda: [video], fps, target, progress=progress)
        x, info = self._prepare(video, fps)
        segments: list[list[tuple[bytes, bytes]]] = [[] for _ in range(self.num_levels)]
        contexts = ChunkContexts(self.intra_period, self.num_levels)
        for c, chunk in enumerate(_ticking(self._chunks(info), progress)):
            t_pos = self._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            symbols, bounds = self._analyze(x[:, :, chunk], t_pos)
            for k, segment in enumerate(self._compress_chunk(c, symbols, bounds, contexts)):
                segments[k].append(segment)
        return Compressed(segments, info, self.intra_period)

    def _compress_chunk(
        self, c: int, symbols: list[Tensor], bounds: list[Tensor], contexts: ChunkContexts
    ) -> list[tuple[bytes, bytes]]:
        """Entropy-code chunk ``c``'s levels, each with what its decoder will know (``contexts``)."""
        segments = []
        for k in range(len(symbols)):
            coarser = symbols[k - 1][0].cpu().numpy() if k else None  # (C_{k-1}, T', H', W')
            segments.append(self.level(k).compress(bounds[k], symbols[k], contexts.level(c, k, coarser)))
        for k, s in enumerate(symbols):
            contexts.done(c, k, s[0].cpu().numpy())
        return segments

    def _decompressor(self, compressed: Compressed, c: int, chunk: slice, contexts: ChunkContexts) -> SymbolSource:
        """The decoder's symbol source for chunk ``c``: level k from its segment and what the
        decoder knows (the coarser levels just decoded, the previous chunk's last frames)."""
        decoded: list[np.ndarray] = []

        def source(k: int, coarser: LevelDecoded | None) -> Tensor:
            context = contexts.level(c, k, decoded[k - 1] if k else None)
            shape = self.latent_shape(k, compressed.info, chunk)
            sent = None if compressed.rate is None else compressed.rate.chunks[c].sent(k, shape[1])
            s = self.level(k).decompress(compressed.segments[k][c], shape, context, sent)
            decoded.append(s[0].cpu().numpy())
            contexts.done(c, k, decoded[-1])
            return s

        return source

    @torch.no_grad()
    def compress_tokens(self, tokens: Tokens) -> Compressed:
        """Entropy-code tokens (e.g. a token store's, or sampled ones) losslessly: the levels they hold
        (a prefix of the codec's), chunk by chunk as :meth:`compress` codes them. With a context model
        z comes from the symbols themselves, so the bytes equal those of :meth:`compress` on the video
        the tokens came from; with the scale hyperprior alone the symbols stand in for the bounded
        latent, so z (and the size) may differ slightly while the symbols decode exactly.

        Raises:
            ValueError: for rate-controlled tokens (a mask; code the video with a target instead) or
                more levels than the codec has.
        """
        if tokens.mask is not None:
            raise ValueError(
                "These tokens were rate controlled (they carry a mask of sent levels); compress_tokens codes "
                "every token frame of every level it is given: encode the video with a rate target instead."
            )
        levels = len(tokens.symbols)
        if not 1 <= levels <= self.num_levels:
            raise ValueError(f"The tokens hold {levels} levels; this codec codes 1 to {self.num_levels}.")
        info, pt = tokens.info, self.config.patch_t
        contexts = ChunkContexts(self.intra_period, self.num_levels)
        segments: list[list[tuple[bytes, bytes]]] = [[] for _ in range(levels)]
        for c, chunk in enumerate(self._chunks(info)):
            grid = slice(chunk.start // pt, chunk.stop // pt)
            # (T', H', W', C_k) -> (1, C_k, T', H', W')
            symbols = [
                torch.from_numpy(np.ascontiguousarray(s[grid])).permute(3, 0, 1, 2)[None] for s in tokens.symbols
            ]
            for k, segment in enumerate(self._compress_chunk(c, symbols, [s.float() for s in symbols], contexts)):
                segments[k].append(segment)
        return Compressed(segments, info, self.intra_period)

    @torch.no_grad()
    def decompress_tokens(self, compressed: Compressed) -> Tokens:
        """The tokens of every level a :class:`Compressed` holds, decoded without synthesizing pixels
        (the inverse of :meth:`compress_tokens`; for a rate-controlled file, the tokens its decoder sees)."""
        info, levels = compressed.info, len(compressed.segments)
        contexts = ChunkContexts(compressed.intra_period, self.num_levels)
        decoded: list[list[np.ndarray]] = [[] for _ in range(levels)]
        chunks = self._chunks(info)
        for c, chunk in enumerate(chunks):
            source = self._decompressor(compressed, c, chunk, contexts)
            sent_levels = compressed.chunk_levels(c, levels)
            for k in range(levels):
                c_k, t, h, w = self.latent_shape(k, info, chunk)
                if k < sent_levels:
                    decoded[k].append(source(k, None)[0].permute(1, 2, 3, 0).cpu().numpy())  # (T', H', W', C_k)
                else:
                    decoded[k].append(np.zeros((t, h, w, c_k), np.uint8))  # not sent in this chunk
        rate = compressed.rate
        mask = None if rate is None else rate.mask([(c.stop - c.start) // self.config.patch_t for c in chunks], levels)
        return Tokens([np.concatenate(d) for d in decoded], info, mask)

    def latent_shape(self, k: int, info: VideoInfo, chunk: slice) -> tuple[int, int, int, int]:
        """``(C_k, T', H', W')`` of level k in one chunk."""
        c = self.config
        _, h, w = info.padded_shape
        return (c.levels[k].latent_channels, (chunk.stop - chunk.start) // c.patch_t, h // c.patch, w // c.patch)

    @torch.no_grad()
    def decompress(
        self, compressed: Compressed, k_max: int | None = None, progress: Progress | None = None
    ) -> np.ndarray:
        """Segments of levels ``0 .. k_max`` -> uint8 video ``(T, H, W, 3)``."""
        k_max = self._check_k_max(k_max, len(compressed.segments))
        info = compressed.info
        out = []
        contexts = ChunkContexts(compressed.intra_period, self.num_levels)
        for c, chunk in enumerate(_ticking(self._chunks(info), progress)):
            t_pos = self._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            levels = compressed.chunk_levels(c, k_max + 1)
            out.append(self._code_chunk(t_pos, levels, self._decompressor(compressed, c, chunk, contexts)))
        return self._finish(torch.cat(out, dim=2), info)

    # ------------------------------------------------------------------ streams: long videos, a chunk at a time

    def encode_stream(
        self,
        frames: Iterable[np.ndarray],
        fps: float = 25.0,
        *,
        entropy: bool = False,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
        progress: Progress | None = None,
    ) -> CodedStream:
        """Encode frames as they arrive: an iterator of :class:`CodedChunk` (symbols of every level,
        with ``entropy`` also the rANS segments), one per chunk; ``.info`` once it is exhausted.

        ``frames`` is any iterable of uint8 arrays ``(n, H, W, 3)`` of one size (e.g.
        ``VideoReader(path).chunks(32)``); at most a chunk and ``lookahead`` frames are held (None: no
        bound, for frames already in memory), so memory depends on
        the frame size, not on the length. The symbols and segments equal those of :meth:`encode` and
        :meth:`compress` on the whole video, except where a bounded lookahead had to decide a long run
        of candidate shot cuts early (``streaming.py``; ``stream.chunks.forced`` lists them).
        ``progress(frames)`` is called after each chunk with the frames it held.
        """
        chunks = ChunkedVideo(frames, self.config, fps, lookahead)
        contexts = ChunkContexts(self.intra_period, self.num_levels)

        def code(chunk: FrameChunk) -> CodedChunk:
            with torch.no_grad():
                x = _frames_to_unit(np.ascontiguousarray(chunk.frames), self.device)  # (1, 3, n, H, W)
                pad = chunks.padding
                x = torch.nn.functional.pad(x, (0, pad.w, 0, pad.h, 0, chunk.pad_t), mode="replicate")
                t_pos = self._t_pos(x.shape[2], chunk.scene_ids)
                symbols, bounds = self._analyze(x, t_pos)
                segments = self._compress_chunk(chunk.index, symbols, bounds, contexts) if entropy else None
            per_level = [
                s[0].permute(1, 2, 3, 0).cpu().numpy() for s in symbols
            ]  # (C_k, T', H', W') -> (T', H', W', C_k)
            if progress is not None:
                progress(len(chunk.frames))
            return CodedChunk(chunk.index, chunk.start, len(chunk.frames), per_level, segments)

        return CodedStream(chunks, code)

    def compress_stream(
        self,
        frames: Iterable[np.ndarray],
        fps: float = 25.0,
        *,
        segments: Sequence[Any] | None = None,
        lookahead: int | None = DEFAULT_LOOKAHEAD,
        progress: Progress | None = None,
    ) -> Compressed:
        """:meth:`encode_stream` with entropy coding, keeping only the segments: ``segments[k]`` gets
        each chunk's ``(z, y)`` appended (default: lists in memory; a ``formats.spool.SegmentSpool``
        keeps them on disk)."""
        sink: Sequence[Any] = [[] for _ in range(self.num_levels)] if segments is None else segments
        stream = self.encode_stream(frames, fps, entropy=True, lookahead=lookahead, progress=progress)
        for chunk in stream:
            assert chunk.segments is not None
            for k, segment in enumerate(chunk.segments):
                sink[k].append(segment)
        return Compressed(cast("list[list[tuple[bytes, bytes]]]", sink), stream.info, self.intra_period)

    def _chunk_frames(self, x: Tensor, info: VideoInfo, chunk: slice) -> np.ndarray:
        """A decoded chunk ``(1, 3, T, H, W)`` -> its uint8 frames ``(n, H, W, 3)``, padding cropped."""
        return self._finish(x[:, :, : min(chunk.stop, info.frames) - chunk.start], info)

    def decode_stream(
        self, tokens: Tokens, k_max: int | None = None, progress: Progress | None = None
    ) -> Iterator[np.ndarray]:
        """Tokens -> uint8 frames ``(n, H, W, 3)`` chunk by chunk (levels ``0 .. k_max``); the arrays of
        ``tokens.symbols`` are only sliced, so zarr arrays (a token store) are read a chunk at a time."""
        k_max = self._check_k_max(k_max, len(tokens.symbols))
        info, pt = tokens.info, self.config.patch_t
        for chunk in self._chunks(info):
            t_pos = self._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            grid = slice(chunk.start // pt, chunk.stop // pt)

            def stored(k: int, coarser: LevelDecoded | None, grid: slice = grid) -> Tensor:
                s = np.ascontiguousarray(tokens.symbols[k][grid])  # (T', H', W', C_k)
                return torch.from_numpy(s).to(self.device).permute(3, 0, 1, 2)[None]  # (1, C_k, T', H', W')

            levels = tokens.chunk_levels(grid, k_max + 1)
            frames = self._chunk_frames(self._code_chunk(t_pos, levels, stored), info, chunk)
            if progress is not None:
                progress(len(frames))
            yield frames

    def decompress_stream(
        self, compressed: Compressed, k_max: int | None = None, progress: Progress | None = None
    ) -> Iterator[np.ndarray]:
        """Segments -> uint8 frames ``(n, H, W, 3)`` chunk by chunk (levels ``0 .. k_max``); each
        segment is read only when its chunk is decoded (``formats.spool.open_mptvc`` reads them from disk)."""
        k_max = self._check_k_max(k_max, len(compressed.segments))
        info = compressed.info
        contexts = ChunkContexts(compressed.intra_period, self.num_levels)
        for c, chunk in enumerate(self._chunks(info)):
            t_pos = self._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
            decoded = self._decompressor(compressed, c, chunk, contexts)
            levels = compressed.chunk_levels(c, k_max + 1)
            frames = self._chunk_frames(self._code_chunk(t_pos, levels, decoded), info, chunk)
            if progress is not None:
                progress(len(frames))
            yield frames

    def _check_k_max(self, k_max: int | None, available: int) -> int:
        k_max = available - 1 if k_max is None else k_max
        if not 0 <= k_max < min(available, self.num_levels):
            raise ValueError(
                f"k_max={k_max} is out of range: this input holds {available} of the codec's "
                f"{self.num_levels} levels, so k_max must lie in 0..{min(available, self.num_levels) - 1}."
            )
        return k_max


def _rename_format1_keys(state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
    """``load_state_dict`` pre-hook: rename format-1 tensors (parallel per-part lists) in place."""
    for name in [n for n in state_dict if n.startswith(prefix)]:
        new = prefix + format2_name(name[len(prefix) :])
        if new != name:
            state_dict[new] = state_dict.pop(name)
