"""The prior as an entropy model: held-out bits per level-0 token against the codec's own coded rate.

For every clip (tokenized at the prior's frame size exactly as for training)::

    tokens = codec.encode(frames)              level 0: uint8 (T', h', w', C_0)
    codec  = 8 * (level-0 bytes of codec.compress(frames)) / (T' h' w')     y and the z side info
    prior, windows  = -log2 p(tokens) over independent windows of t' token frames
    prior, sliding  = the first window, then each further token frame given the t'-1 frames before it

    prior, coded    = (with ``coded=True``) the real size of ``compress_indices``: the prior driving the
                      rANS coder over the sliding schedule, checked to decode back to the same tokens

The prior's ideal numbers are code lengths; the codec's and the coded prior's are real bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from generation.data import FRAME_MULTIPLE, fit_frames
from generation.model import TokenPrior
from mptvc_latents.codec import MPTVC
from mptvc_latents.video import read_video

__all__ = ["ClipRate", "RateReport", "clip_bits", "evaluate_prior", "unigram_bits_table"]


@dataclass
class ClipRate:
    name: str
    frames: int
    tokens: int
    prior_windows_bits: float
    prior_sliding_bits: float
    codec_y_bits: float
    codec_z_bits: float
    unigram_bits: float | None = None
    prior_coded_bits: float | None = None  # 8 x bytes of compress_indices (header included)

    @property
    def codec_bits(self) -> float:
        return self.codec_y_bits + self.codec_z_bits


@dataclass
class RateReport:
    clips: list[ClipRate] = field(default_factory=list)

    def totals(self) -> dict[str, float]:
        n = sum(c.tokens for c in self.clips)
        total = lambda attr: sum(getattr(c, attr) for c in self.clips) / n  # noqa: E731
        out = {
            "tokens": n,
            "prior_windows": total("prior_windows_bits"),
            "prior_sliding": total("prior_sliding_bits"),
            "codec": total("codec_bits"),
            "codec_y": total("codec_y_bits"),
            "codec_z": total("codec_z_bits"),
        }
        if all(c.unigram_bits is not None for c in self.clips):
            out["unigram"] = total("unigram_bits")
        if all(c.prior_coded_bits is not None for c in self.clips):
            out["prior_coded"] = total("prior_coded_bits")
        return out

    def to_dict(self) -> dict:
        return {
            "clips": [asdict(c) | {"codec_bits": c.codec_bits} for c in self.clips],
            "bits_per_token": self.totals(),
        }

    def format(self) -> str:
        per = lambda bits, c: "" if bits is None else f"{bits / c.tokens:9.3f}"  # noqa: E731
        rows = [
            "clip                            frames  tokens  prior/win  prior/slide  codec(y+z)  unigram  prior/coded"
        ]
        for c in self.clips:
            rows.append(
                f"{c.name[:30]:30s} {c.frames:6d} {c.tokens:7d} {c.prior_windows_bits / c.tokens:10.3f} "
                f"{c.prior_sliding_bits / c.tokens:12.3f} {c.codec_bits / c.tokens:11.3f} "
                f"{per(c.unigram_bits, c):>9s} {per(c.prior_coded_bits, c):>12s}"
            )
        t = self.totals()
        rows.append(
            f"{'all (bits/token)':30s} {'':6s} {t['tokens']:7d} {t['prior_windows']:10.3f} "
            f"{t['prior_sliding']:12.3f} {t['codec']:11.3f} {t.get('unigram', float('nan')):9.3f} "
            f"{t.get('prior_coded', float('nan')):12.3f}"
        )
        return "\n".join(rows)


def _coded_exactly(prior: TokenPrior, indices: torch.Tensor, path: str | Path) -> bytes:
    """``compress_indices`` of a clip, after checking that it decodes back to the same indices."""
    from generation.coding import compress_indices, decompress_indices

    data = compress_indices(prior, indices)
    if not torch.equal(decompress_indices(prior, data), indices):
        raise ValueError(f"The prior's stream of {str(path)!r} decoded to other tokens than it coded.")
    return data


@torch.no_grad()
def clip_bits(prior: TokenPrior, indices: torch.Tensor, sliding: bool, batch: int = 8) -> float:
    """Total bits of a clip's raster-order indices ``(T', h', w')`` under the prior.

    ``T'`` must be at least one window (``prior.config.grid[0]``); with ``sliding=False`` a multiple of it.
    """
    window, per_frame = prior.config.grid[0], prior.config.frame_tokens
    t = indices.shape[0]
    if t < window or (not sliding and t % window):
        raise ValueError(f"A clip of {t} token frames does not split into windows of {window}.")
    flat = indices.reshape(t, per_frame)  # (T', h'*w')
    if sliding:
        starts = range(0, t - window + 1)
        keep = [slice(0, window * per_frame)] + [slice((window - 1) * per_frame, None)] * (t - window)
    else:
        starts = range(0, t, window)
        keep = [slice(None)] * (t // window)
    seqs = torch.stack([flat[s : s + window].reshape(-1) for s in starts])  # (n_windows, window*h'*w')
    bits = torch.cat([prior.bits(seqs[i : i + batch]) for i in range(0, len(seqs), batch)])  # (n_windows, N)
    return float(sum(b[k].sum() for b, k in zip(bits, keep, strict=True)))


def unigram_bits_table(store_path: str | Path, vocab_size: int) -> torch.Tensor:
    """``-log2`` of the level-0 index frequencies of a (training) store, add-1/2 smoothed: ``(V,)`` float64.

    A context-free baseline: what coding each token alone with the training histogram would cost.
    """
    from generation.data import level_fsq, symbols_to_indices
    from mptvc_latents.store import TokenStore

    store = TokenStore.open(store_path)
    fsq = level_fsq(store)
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for key in store.clips():
        idx = symbols_to_indices(fsq, torch.from_numpy(store.level_array(key, 0)[...]))
        counts += torch.bincount(idx.reshape(-1), minlength=vocab_size).double()
    p = (counts + 0.5) / (counts.sum() + 0.5 * vocab_size)
    return -torch.log2(p)


def evaluate_prior(
    prior: TokenPrior,
    codec: MPTVC,
    paths: list[str | Path],
    max_frames: int = 256,
    unigram: torch.Tensor | None = None,
    coded: bool = False,
) -> RateReport:
    """Score each video's level-0 tokens with the prior and against the codec's coded level 0
    (and, given ``unigram = unigram_bits_table(train_store)``, against the training histogram;
    with ``coded``, code them with the prior for real and check they decode back exactly).

    Raises:
        ValueError: for a clip too short for one window, or (``coded``) a stream that does not
            decode back to the tokens it coded.
    """
    report = RateReport()
    window = prior.config.grid[0] * codec.config.patch_t
    multiple = max(FRAME_MULTIPLE, window)
    for path in paths:
        clip = read_video(path, max_frames=max_frames)
        t = clip.frames.shape[0] // multiple * multiple
        if t == 0:
            raise ValueError(f"{str(path)!r} has fewer than {multiple} frames, one window of the prior.")
        frames = fit_frames(clip.frames[:t], tuple(prior.config.frame_size))
        tokens = codec.encode(frames, clip.fps)
        compressed = codec.compress(frames, clip.fps)
        level0 = torch.from_numpy(tokens.symbols[0].astype(np.int64))  # (T', h', w', C)
        indices = (level0 * prior.basis).sum(-1)  # (T', h', w') mixed radix, as FSQ
        z_bytes = sum(len(z) for z, _ in compressed.segments[0])
        y_bytes = sum(len(y) for _, y in compressed.segments[0])
        report.clips.append(ClipRate(
            name=Path(path).stem, frames=t, tokens=int(indices.numel()),
            prior_windows_bits=clip_bits(prior, indices, sliding=False),
            prior_sliding_bits=clip_bits(prior, indices, sliding=True),
            codec_y_bits=8.0 * y_bytes, codec_z_bits=8.0 * z_bytes,
            unigram_bits=None if unigram is None else float(unigram[indices.reshape(-1)].sum()),
            prior_coded_bits=None if not coded else 8.0 * len(_coded_exactly(prior, indices, path)),
        ))  # fmt: skip
    return report
