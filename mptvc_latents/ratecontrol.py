"""Rate control: code a video for a target bpp or PSNR, spending bits where they buy quality.

The Matryoshka pyramid lets every chunk stop after any level, and (with the context entropy
model) lets a finer level leave out token frames whose residual the decoder can stand in for.
The encoder measures both choices and picks them by Lagrangian rate-distortion optimisation
(Shoham & Gersho 1988; Ortega & Ramchandran 1998), one lambda for the whole video::

    pass 1  per chunk c: closed-loop analysis of every level (codec._analyze's loop), and for
            each prefix n = 1..K the real coded bytes of its levels and the SSE of the decoded
            uint8 frames: a table (ChunkMeasure); no skipped frames
    plan    per lambda, a Viterbi pass over the chunks picks n_c minimising
            sum_c SSE_c(n_c) + lambda * bits_c(n_c | n_{c-1});  lambda is bisected until the
            whole file (header included) meets the target, then single-chunk moves fill the gap
            the convex hull leaves (greedy, by SSE per bit)
    pass 2+ (temporal skipping) the same table measured with lambda_s: in every level k >= 1, token
            frame t (t >= 1) is left out when the SSE it adds, measured by synthesising the level
            with frame t repeating frame t-1 (what the decoder does), is below lambda_s times its
            bits; later levels code against that reconstruction (closed loop, so the recorded SSE
            is the decoder's). The plan is re-solved on the new table and kept if it is better
            (lower SSE at a bpp budget, fewer bits at a PSNR floor); lambda_s starts at the
            lambda of the plan without skipping and follows the plan's lambda for
            ``RateTarget.skip_rounds`` rounds.

Why bits_c depends on n_{c-1}: level k of chunk c reads the last token frame of level k (and of
level k-1) in chunk c-1 as context. When chunk c-1 did not send level k, that context is unknown,
in the encoder and the decoder alike (``codec.ChunkContexts`` never saw those symbols): level k
is coded as at an intra chunk. The encoder codes every level under each context it can meet
(known; previous unknown but coarser known; both unknown) and measures the real bytes of each, so
the plan's bit count is the file's. The chosen plan is recorded in the file (container v4,
``types.RatePlan``); a decoder reads it and decodes each chunk's levels only.

``RateTarget(bpp=...)`` is a budget: the file's bpp (header included, as ``mptvc info`` counts it)
never exceeds it. ``RateTarget(psnr=...)`` is a floor: the predicted PSNR-RGB (from the SSE the
encoder measured, equal to the decoder's) never falls below it. A target outside what the codec
reaches raises :class:`UnreachableTargetError` with the reachable range, or with
``best_effort`` gives the nearest reachable coding.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from mptvc_latents.entropy.context import LevelContext, repeat_skipped
from mptvc_latents.pyramid import upsample
from mptvc_latents.streaming import ChunkedVideo, FrameChunk
from mptvc_latents.types import ChunkRate, Compressed, RatePlan, Tokens, VideoInfo

if TYPE_CHECKING:
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.level import LevelDecoded, Runner

log = logging.getLogger(__name__)

__all__ = [
    "ChunkMeasure",
    "RateTarget",
    "Solution",
    "UnreachableTargetError",
    "assemble",
    "compress_to_target",
    "encode_to_target",
    "header_bits",
    "measure",
    "plan_chunks",
    "psnr_from_sse",
    "rate_plan",
]

PEAK = 255.0
Segment = tuple[bytes, bytes]
Progress = Callable[[int], object]
FrameSource = Callable[[], Iterable[np.ndarray]]

# How level k of a chunk is coded given how many levels the chunk before sent (see the docstring).
FULL, NO_PREVIOUS, NONE = "full", "no previous", "none"


@dataclass(frozen=True)
class RateTarget:
    """What to aim for: exactly one of ``bpp`` (a budget, header included) or ``psnr`` (a floor on
    PSNR-RGB in dB over the whole video).

    ``best_effort``: a target outside the reachable range gives the nearest reachable coding
    instead of :class:`UnreachableTargetError`. ``skip_frames``: leave out token frames of levels
    k >= 1 whose residual buys less than it costs (needs the context entropy model; ignored, with a
    log line, for a checkpoint without one). ``skip_rounds``: encoder passes that search the
    skipping trade-off (each one analyses the video again).
    """

    bpp: float | None = None
    psnr: float | None = None
    best_effort: bool = False
    skip_frames: bool = True
    skip_rounds: int = 2

    def __post_init__(self) -> None:
        if (self.bpp is None) == (self.psnr is None):
            raise ValueError(
                f"A rate target needs exactly one of bpp and psnr, got bpp={self.bpp!r}, psnr={self.psnr!r}."
            )
        value = self.bpp if self.bpp is not None else self.psnr
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"The target {self.kind} must be a positive finite number, got {value!r}.")
        if isinstance(self.skip_rounds, bool) or not isinstance(self.skip_rounds, int) or self.skip_rounds < 0:
            raise ValueError(f"skip_rounds must be a non-negative integer, got {self.skip_rounds!r}.")

    @property
    def kind(self) -> str:
        """``"bpp"`` or ``"psnr"``."""
        return "bpp" if self.bpp is not None else "psnr"

    @property
    def value(self) -> float:
        return float(self.bpp if self.bpp is not None else self.psnr)  # type: ignore[arg-type]


class UnreachableTargetError(ValueError):
    """The target lies outside what the codec can reach on this video; ``reachable`` is the
    ``(lowest, highest)`` value of the target's kind (bpp, or PSNR in dB)."""

    def __init__(self, message: str, kind: str, reachable: tuple[float, float]) -> None:
        super().__init__(message)
        self.kind, self.reachable = kind, reachable


def psnr_from_sse(sse: float, samples: int) -> float:
    """PSNR in dB of uint8 samples with this sum of squared errors (inf for a perfect match)."""
    return math.inf if sse <= 0 else 10.0 * math.log10(PEAK**2 * samples / sse)


# --------------------------------------------------------------------------- measuring


@dataclass
class ChunkMeasure:
    """One chunk as the encoder measured it: ``sse[n - 1]`` of the prefix of n levels (uint8 RGB,
    padding cropped), ``segments[k][variant]`` the level's bytes under each context it can meet,
    ``sent[k]`` its token frames sent, ``symbols[k]`` what the decoder gets (``(T', H', W', C_k)``,
    skipped frames repeated)."""

    intra: bool
    sse: list[float]
    segments: list[dict[str, Segment]]
    sent: list[np.ndarray]
    symbols: list[np.ndarray] = field(repr=False)

    def variant(self, k: int, previous_levels: int) -> str:
        """How level k is coded after a chunk that sent ``previous_levels`` levels (0: none before)."""
        if len(self.segments[k]) == 1:
            return next(iter(self.segments[k]))
        if self.intra or previous_levels <= k - 1:
            return NONE
        return FULL if previous_levels > k else NO_PREVIOUS

    def segment(self, k: int, previous_levels: int) -> Segment:
        return self.segments[k][self.variant(k, previous_levels)]

    def bits(self, levels: int, previous_levels: int) -> int:
        """Bits of the first ``levels`` levels after a chunk that sent ``previous_levels``."""
        return 8 * sum(len(z) + len(y) for z, y in (self.segment(k, previous_levels) for k in range(levels)))


class _ChunkCoder:
    """Measures one chunk: the closed loop of ``MPTVC._analyze`` plus a decode of every level."""

    def __init__(self, model: MPTVC, chunk: FrameChunk, padding_hw: tuple[int, int]) -> None:
        self.model, self.frames = model, chunk.frames  # uint8 (n, H, W, 3), unpadded
        from mptvc_latents.codec import _frames_to_unit

        x = _frames_to_unit(np.ascontiguousarray(chunk.frames), model.device)  # (1, 3, n, H, W)
        x = torch.nn.functional.pad(x, (0, padding_hw[1], 0, padding_hw[0], 0, chunk.pad_t), mode="replicate")
        self.t_pos = model._t_pos(x.shape[2], chunk.scene_ids)
        self.targets = model.pyramid.gaussian(x)
        self.runner: Runner = model._runner()
        self.source = torch.from_numpy(np.ascontiguousarray(chunk.frames)).to(model.device).double()  # (n, H, W, 3)

    def output(self, decoded: LevelDecoded, k: int) -> Tensor:
        """Level k's reconstruction at full size, cropped: ``(1, 3, n, H, W)`` in [-1, 1]."""
        n, h, w = self.frames.shape[:3]
        return upsample(decoded.x_hat, self.model.num_levels - 1 - k)[:, :, :n, :h, :w]

    def sse(self, decoded: LevelDecoded, k: int) -> float:
        """SSE of the decoder's uint8 frames from levels 0..k."""
        from mptvc_latents.codec import _unit_to_frames  # the decoder's rounding, so the SSE is its

        out = _unit_to_frames(self.output(decoded, k)).astype(np.int64)
        return float(((out - self.frames.astype(np.int64)) ** 2).sum())

    def float_sse(self, decoded: LevelDecoded, k: int) -> float:
        """SSE before rounding to uint8 (for comparing trials; cheaper and smooth)."""
        out = (self.output(decoded, k)[0].permute(1, 2, 3, 0).clamp(-1, 1).double() + 1) * 127.5
        return float(((out - self.source) ** 2).sum())


def _measure_chunk(
    model: MPTVC, coder: _ChunkCoder, c: int, previous: list[np.ndarray] | None, lam_skip: float | None
) -> ChunkMeasure:
    """Measure chunk ``c`` (see the module docstring); ``previous``: the last token frame
    ``(C_k, H', W')`` of every level in chunk c-1 (None for the first chunk)."""
    has_context = model.intra_period is not None
    intra = not has_context or c % model.intra_period == 0  # type: ignore[operator]
    sse: list[float] = []
    segments: list[dict[str, Segment]] = []
    sent_all: list[np.ndarray] = []
    symbols_np: list[np.ndarray] = []  # (C_k, T', H', W')
    coarser: LevelDecoded | None = None
    for k, level in enumerate(model.pyramid_levels()):
        symbols, bound = level.analyze(coder.targets[k], coarser, coder.t_pos, coder.runner)
        decoded = level.synthesize(symbols, coarser, coder.t_pos, coder.runner)
        s = symbols[0].cpu().numpy()
        below = symbols_np[k - 1] if k else None
        sent = np.ones(s.shape[1], bool)
        if lam_skip is not None and has_context and k > 0 and s.shape[1] > 1:
            prev = None if intra or previous is None else previous[k]
            seen = LevelContext(below, prev, None if prev is None else previous[k - 1])  # type: ignore[index]
            s, sent, decoded = _choose_skips(model, k, coder, s, coarser, decoded, seen, lam_skip)
        sse.append(coder.sse(decoded, k))
        symbols = torch.from_numpy(s)[None].to(model.device)
        variants: dict[str, Segment] = {}
        for variant in _variants(k, intra, has_context):
            context: LevelContext | None = None
            if has_context:
                assert previous is not None or variant == NONE
                context = LevelContext(
                    coarser=below,
                    previous=previous[k] if variant == FULL else None,  # type: ignore[index]
                    coarser_previous=previous[k - 1] if variant != NONE and k else None,  # type: ignore[index]
                )
            variants[variant] = level.compress(bound, symbols, context, None if sent.all() else sent)
        segments.append(variants)
        sent_all.append(sent)
        symbols_np.append(s)
        coarser = decoded
    tokens = [s.transpose(1, 2, 3, 0) for s in symbols_np]  # (C_k, T', H', W') -> (T', H', W', C_k)
    return ChunkMeasure(intra, sse, segments, sent_all, tokens)


def _variants(k: int, intra: bool, has_context: bool) -> tuple[str, ...]:
    if not has_context or intra:
        return (NONE,)
    return (FULL, NO_PREVIOUS, NONE)[: k + 1]


def _choose_skips(
    model: MPTVC,
    k: int,
    coder: _ChunkCoder,
    symbols: np.ndarray,
    coarser: LevelDecoded | None,
    decoded: LevelDecoded,
    context: LevelContext,
    lam: float,
) -> tuple[np.ndarray, np.ndarray, LevelDecoded]:
    """Leave out token frames of level k in time order: frame t goes when the SSE it adds (the
    level decoded with frame t repeating frame t-1, all else as decided so far) is below ``lam``
    times its bits. Returns the symbols the decoder gets, the sent mask and the decoded level."""
    level = model.level(k)
    assert level.context is not None
    scale = level.scale_index(torch.from_numpy(symbols)[None].to(model.device))
    bits = level.context.frame_bits(symbols, scale, context)  # (T',) with every frame sent
    current, sent = symbols, np.ones(symbols.shape[1], bool)
    current_sse = coder.float_sse(decoded, k)
    for t in range(1, symbols.shape[1]):
        trial_sent = sent.copy()
        trial_sent[t] = False
        trial = repeat_skipped(symbols, trial_sent)
        if np.array_equal(trial[:, t], symbols[:, t]):  # the frame repeats anyway: free to leave out
            current, sent = trial, trial_sent
            continue
        trial_decoded = level.synthesize(
            torch.from_numpy(trial)[None].to(model.device), coarser, coder.t_pos, coder.runner
        )
        trial_sse = coder.float_sse(trial_decoded, k)
        if trial_sse - current_sse < lam * bits[t]:
            current, sent, decoded, current_sse = trial, trial_sent, trial_decoded, trial_sse
    return current, sent, decoded


def measure(
    model: MPTVC,
    frames: FrameSource,
    fps: float,
    lam_skip: float | None = None,
    *,
    lookahead: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[ChunkMeasure], VideoInfo]:
    """One encoder pass over the video (``frames()`` gives its uint8 frame batches afresh): the
    table of every chunk, with token frames left out at ``lam_skip`` (None: none left out)."""
    if getattr(model.config, "causal", False):
        raise ValueError(
            "Rate control measures the non-causal codec's chunks; this checkpoint is the causal variant, which it "
            "does not support yet: encode without a target."
        )
    chunks = ChunkedVideo(frames(), model.config, fps, lookahead)
    measures: list[ChunkMeasure] = []
    previous: list[np.ndarray] | None = None
    with torch.no_grad():
        for chunk in chunks:
            coder = _ChunkCoder(model, chunk, (chunks.padding.h, chunks.padding.w))
            m = _measure_chunk(model, coder, chunk.index, previous, lam_skip)
            measures.append(m)
            previous = [s[-1].transpose(2, 0, 1) for s in m.symbols]  # last token frame (H', W', C) -> (C, H', W')
            if progress is not None:
                progress(len(chunk.frames))
    return measures, chunks.info


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Solution:
    """A plan over a measured table: ``levels[c]`` sent per chunk, the file's ``bits`` (header
    included) and ``sse``, and the Lagrange multiplier ``lam`` (SSE per bit) it was found at."""

    levels: tuple[int, ...]
    bits: int  # the whole file, header included
    sse: float
    lam: float


class _Planner:
    """Plans over one table: the bits and SSE of a plan, Viterbi at a lambda, and local moves."""

    def __init__(self, measures: list[ChunkMeasure], num_levels: int, header_bits: int) -> None:
        self.m, self.K, self.header_bits = measures, num_levels, header_bits

    def chunk_bits(self, c: int, n: int, previous: int) -> int:
        return self.m[c].bits(n, previous)

    def cost(self, levels: tuple[int, ...]) -> tuple[int, float]:
        bits = self.header_bits + sum(self.chunk_bits(c, n, levels[c - 1] if c else 0) for c, n in enumerate(levels))
        return bits, float(sum(self.m[c].sse[n - 1] for c, n in enumerate(levels)))

    def solution(self, levels: tuple[int, ...], lam: float) -> Solution:
        bits, sse = self.cost(levels)
        return Solution(levels, bits, sse, lam)

    def viterbi(self, lam: float) -> tuple[int, ...]:
        """The plan minimising SSE + lam * bits exactly (the context makes chunk c's bits depend on
        n_{c-1}, so the optimum is a shortest path over the chunks with K states each)."""
        states = range(1, self.K + 1)
        cost = {n: self.m[0].sse[n - 1] + lam * self.chunk_bits(0, n, 0) for n in states}
        back: list[dict[int, int]] = []
        for c in range(1, len(self.m)):
            step: dict[int, int] = {}
            new: dict[int, float] = {}
            for n in states:
                paths = {p: cost[p] + lam * self.chunk_bits(c, n, p) for p in states}
                best = min(paths, key=paths.__getitem__)
                step[n], new[n] = best, paths[best] + self.m[c].sse[n - 1]
            back.append(step)
            cost = new
        n = min(states, key=lambda s: (cost[s], s))
        levels = [n]
        for step in reversed(back):
            n = step[n]
            levels.append(n)
        return tuple(reversed(levels))

    def move(self, levels: tuple[int, ...], c: int, n: int) -> tuple[int, float]:
        """(bits, SSE) changes of setting chunk c to n levels (only chunks c and c+1 change)."""
        before = levels[c - 1] if c else 0
        d_bits = self.chunk_bits(c, n, before) - self.chunk_bits(c, levels[c], before)
        if c + 1 < len(levels):
            d_bits += self.chunk_bits(c + 1, levels[c + 1], n) - self.chunk_bits(c + 1, levels[c + 1], levels[c])
        return d_bits, self.m[c].sse[n - 1] - self.m[c].sse[levels[c] - 1]


def plan_chunks(
    measures: list[ChunkMeasure],
    num_levels: int,
    header_bits: int,
    pixels: int,
    target: RateTarget,
    quiet: bool = False,
) -> Solution:
    """The plan (levels per chunk) for ``target`` over a measured table: the lowest SSE within a
    bpp budget, or the fewest bits at a PSNR floor (module docstring).

    Raises:
        UnreachableTargetError: when the target is outside the reachable range and not ``best_effort``.
    """
    planner = _Planner(measures, num_levels, header_bits)
    # The ends of the reachable range: the fewest bits, and the lowest SSE (not always every level:
    # on some content a finer level costs bits and adds error).
    low = _refine_ends(planner, planner.solution(planner.viterbi(_LAMBDA_MAX), _LAMBDA_MAX), fewer_bits=True)
    high = _refine_ends(planner, planner.solution(planner.viterbi(_LAMBDA_MIN), _LAMBDA_MIN), fewer_bits=False)
    samples = 3 * pixels
    if target.kind == "bpp":
        budget = target.value * pixels
        reach = (low.bits / pixels, high.bits / pixels)
        if not reach[0] <= target.value <= reach[1]:
            _unreachable(target, reach, "bpp", "{:.4f}", quiet)
            return low if target.value < reach[0] else high

        def fits(bits: int, sse: float) -> bool:
            return bits <= budget
    else:
        floor_sse = _floor_sse(target.value, samples)
        reach = (psnr_from_sse(low.sse, samples), psnr_from_sse(high.sse, samples))
        if not reach[0] <= target.value <= reach[1]:
            _unreachable(target, reach, "PSNR", "{:.2f} dB", quiet)
            return low if target.value < reach[0] else high

        def fits(bits: int, sse: float) -> bool:
            return sse <= floor_sse

    # Bisect log(lambda): a larger lambda never gives more bits nor less SSE on the hull.
    lo, hi = math.log10(_LAMBDA_MIN), math.log10(_LAMBDA_MAX)
    best = low if fits(low.bits, low.sse) else high
    for _ in range(48):
        mid = (lo + hi) / 2
        s = planner.solution(planner.viterbi(10**mid), 10**mid)
        if fits(s.bits, s.sse):
            best = s if _better(s, best, target) or not fits(best.bits, best.sse) else best
            if target.kind == "bpp":
                hi = mid
            else:
                lo = mid
        elif target.kind == "bpp":
            lo = mid
        else:
            hi = mid
    return _refine(planner, best, fits, target)


_LAMBDA_MIN, _LAMBDA_MAX = 1e-9, 1e12  # SSE per bit: the lowest SSE, the fewest bits


def _refine_ends(planner: _Planner, s: Solution, fewer_bits: bool) -> Solution:
    """Break the ties an extreme lambda leaves: fewer bits at equal SSE, or lower SSE at equal bits."""
    best = s
    for c in range(len(s.levels)):
        for n in range(1, planner.K + 1):
            levels = best.levels[:c] + (n,) + best.levels[c + 1 :]
            trial = planner.solution(levels, s.lam)
            key = (trial.bits, trial.sse) if fewer_bits else (trial.sse, trial.bits)
            if key < ((best.bits, best.sse) if fewer_bits else (best.sse, best.bits)):
                best = trial
    return best


def _floor_sse(psnr: float, samples: int) -> float:
    """The most SSE a PSNR floor allows (a hair above, so a target equal to a measured PSNR is met)."""
    return PEAK**2 * samples / 10 ** (psnr / 10) * (1 + 1e-12)


def _better(a: Solution, b: Solution, target: RateTarget) -> bool:
    """Both meet the target: the lower SSE within a budget, the fewer bits at a floor."""
    return (a.sse, a.bits) < (b.sse, b.bits) if target.kind == "bpp" else (a.bits, a.sse) < (b.bits, b.sse)


def _refine(planner: _Planner, s: Solution, fits: Callable[[int, float], bool], target: RateTarget) -> Solution:
    """Single-chunk moves from a hull plan while the target stays met: a budget gets the upgrade
    that lowers SSE most per added bit, a floor the downgrade that saves most bits per added SSE."""
    levels, bits, sse = list(s.levels), s.bits, s.sse
    up = target.kind == "bpp"
    while True:
        best: tuple[float, int, int, float] | None = None
        for c, n in enumerate(levels):
            new = n + 1 if up else n - 1
            if not 1 <= new <= planner.K:
                continue
            d_bits, d_sse = planner.move(tuple(levels), c, new)
            if not fits(bits + d_bits, sse + d_sse):
                continue
            gain = (-d_sse / max(d_bits, 1)) if up else (-d_bits / max(d_sse, 1e-9))
            if (up and d_sse < 0) or (not up and d_bits < 0):
                if best is None or gain > best[0]:
                    best = (gain, c, d_bits, d_sse)
        if best is None:
            return Solution(tuple(levels), bits, sse, s.lam)
        _, c, d_bits, d_sse = best
        levels[c] += 1 if up else -1
        bits, sse = bits + d_bits, sse + d_sse


def _unreachable(target: RateTarget, reach: tuple[float, float], name: str, fmt: str, quiet: bool) -> None:
    lo, hi = (fmt.format(v) for v in reach)
    message = (
        f"The target {name} {fmt.format(target.value)} is outside what this codec reaches on this video: "
        f"{lo} to {hi}"
        + (" (predicted PSNR-RGB of every chunk at 1 level, and at every level)" if name == "PSNR" else "")
        + "; choose a target in that range, or pass best_effort (--best-effort) for the nearest coding."
    )
    if not target.best_effort:
        raise UnreachableTargetError(message, target.kind, reach)
    if not quiet:
        log.warning("%s; coding the nearest reachable target.", message.split(";")[0])


# --------------------------------------------------------------------------- whole videos


@dataclass
class _Coded:
    measures: list[ChunkMeasure]
    solution: Solution


def header_bits(model: MPTVC, info: VideoInfo, chunks: int) -> int:
    """Bits of the version 4 header of a video of ``info`` in ``chunks`` chunks (its size does not
    depend on the plan or the segments)."""
    from mptvc_latents.formats.container import write_mptvc

    plan = RatePlan(
        tuple(ChunkRate(1, (0,) * model.num_levels, (0.0,) * model.num_levels) for _ in range(chunks)), "bpp", 1.0
    )
    empty = Compressed([[(b"", b"")] * chunks for _ in range(model.num_levels)], info, model.intra_period, plan)
    return 8 * len(write_mptvc(empty, model.config.to_dict(), model.tables_digest()))


def _search(
    model: MPTVC,
    frames: FrameSource,
    fps: float,
    target: RateTarget,
    lookahead: int | None,
    progress: Progress | None,
    measured: tuple[list[ChunkMeasure], VideoInfo] | None = None,
) -> tuple[_Coded, VideoInfo]:
    if measured is None:
        measured = measure(model, frames, fps, None, lookahead=lookahead, progress=progress)
    measures, info = measured
    pixels = info.frames * info.height * info.width
    header = header_bits(model, info, len(measures))
    solution = plan_chunks(measures, model.num_levels, header, pixels, target)
    best = _Coded(measures, solution)
    log.info(
        "rate control, no skipped frames: %.4f bpp, %.2f dB, levels per chunk %s",
        solution.bits / pixels,
        psnr_from_sse(solution.sse, 3 * pixels),
        list(solution.levels),
    )
    if target.skip_frames and model.intra_period is None:
        log.info("Token frames are not left out: this checkpoint has no context entropy model.")
    elif target.skip_frames:
        lam = solution.lam
        for _ in range(target.skip_rounds):
            if not math.isfinite(lam):
                break
            skip_measures, _ = measure(model, frames, fps, lam, lookahead=lookahead, progress=progress)
            relaxed = RateTarget(target.bpp, target.psnr, best_effort=True, skip_frames=True)
            s = plan_chunks(skip_measures, model.num_levels, header, pixels, relaxed, quiet=True)
            meets = (
                s.bits <= target.value * pixels
                if target.kind == "bpp"
                else s.sse <= _floor_sse(target.value, 3 * pixels)
            )
            log.info(
                "rate control, frames skipped at lambda %.3g: %.4f bpp, %.2f dB, levels %s",
                lam,
                s.bits / pixels,
                psnr_from_sse(s.sse, 3 * pixels),
                list(s.levels),
            )
            if meets and _better(s, best.solution, target):
                best = _Coded(skip_measures, s)
            if s.lam == lam:
                break
            lam = s.lam
    return best, info


def rate_plan(measures: list[ChunkMeasure], levels: tuple[int, ...], target: RateTarget) -> RatePlan:
    """The ``RatePlan`` of sending ``levels[c]`` levels of each measured chunk."""
    num_levels = len(measures[0].segments)
    chunks = []
    for m, n in zip(measures, levels, strict=True):
        skipped = tuple(
            int(np.sum((~m.sent[k]).astype(np.int64) << np.arange(len(m.sent[k])))) if k < n else 0
            for k in range(num_levels)
        )
        chunks.append(ChunkRate(n, skipped, tuple(m.sse[min(j, n - 1)] for j in range(num_levels))))
    return RatePlan(tuple(chunks), target.kind, target.value)


def assemble(
    model: MPTVC, measures: list[ChunkMeasure], info: VideoInfo, levels: tuple[int, ...], target: RateTarget
) -> Compressed:
    """The ``Compressed`` of sending ``levels[c]`` levels of each measured chunk: each level's
    segment coded under the context the decoder will have (module docstring)."""
    segments: list[list[Segment]] = [[] for _ in range(model.num_levels)]
    for c, (m, n) in enumerate(zip(measures, levels, strict=True)):
        for k in range(model.num_levels):
            segments[k].append(m.segment(k, levels[c - 1] if c else 0) if k < n else (b"", b""))
    return Compressed(segments, info, model.intra_period, rate_plan(measures, levels, target))


def compress_to_target(
    model: MPTVC,
    frames: FrameSource,
    fps: float,
    target: RateTarget,
    *,
    lookahead: int | None = None,
    progress: Progress | None = None,
    measured: tuple[list[ChunkMeasure], VideoInfo] | None = None,
) -> Compressed:
    """Code the video that ``frames()`` yields (uint8 batches ``(n, H, W, 3)``; called once per
    encoder pass, so it must give the same frames each time, e.g. ``lambda: VideoReader(p).chunks(32)``)
    for ``target``: a ``Compressed`` whose ``rate`` records the plan (write it with
    ``formats.container.write_mptvc``: container v4). ``progress(frames)`` after each chunk of each pass.
    ``measured``: :func:`measure`'s result for this video without skipped frames, if already made
    (it saves the first pass; several targets of one video share it).

    Raises:
        UnreachableTargetError: a target outside the reachable range, without ``best_effort``.
    """
    coded, info = _search(model, frames, fps, target, lookahead, progress, measured)
    return assemble(model, coded.measures, info, coded.solution.levels, target)


def encode_to_target(
    model: MPTVC,
    frames: FrameSource,
    fps: float,
    target: RateTarget,
    *,
    lookahead: int | None = None,
    progress: Progress | None = None,
) -> tuple[Tokens, RatePlan]:
    """The tokens of :func:`compress_to_target`'s coding: every level's symbols as the decoder gets
    them (zeros where a level is not sent in a chunk, a skipped token frame repeating the one before)
    and ``Tokens.mask`` saying which were sent; ``MPTVC.decode`` of them equals the decoded file."""
    coded, info = _search(model, frames, fps, target, lookahead, progress)
    plan = rate_plan(coded.measures, coded.solution.levels, target)
    per_level: list[list[np.ndarray]] = [[] for _ in range(model.num_levels)]
    for m, n in zip(coded.measures, coded.solution.levels, strict=True):
        for k in range(model.num_levels):
            per_level[k].append(m.symbols[k] if k < n else np.zeros_like(m.symbols[k]))
    frames_per_chunk = [len(m.sent[0]) for m in coded.measures]
    mask = plan.mask(frames_per_chunk, model.num_levels)
    return Tokens([np.concatenate(s) for s in per_level], info, mask), plan
