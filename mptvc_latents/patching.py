"""Space-time patching: video ``(B, C, T, H, W)`` <-> channels-last token grid, plus pad/crop.

Non-overlapping ``patch_t x patch x patch`` tubelets (ViViT, Arnab et al. 2021) flattened in
``(C, patch_t, patch, patch)`` order::

    (B, C, T, H, W) -> (B, T/pt, H/p, W/p, C * pt * p * p)

``patchify`` needs sizes divisible by the patch; ``pad_to_multiple`` pads at the **end** of
each axis (back of T, bottom of H, right of W) and returns a ``Padding`` that ``crop`` undoes,
so the pair is an exact inverse on the original region.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mptvc_latents.types import Padding

_PAD_MODES = ("replicate", "constant", "reflect")


def _check_video(video: Tensor, name: str = "video") -> None:
    if video.ndim != 5:
        raise ValueError(
            f"{name} must have shape (B, C, T, H, W), got a tensor of rank {video.ndim}: {tuple(video.shape)}."
        )


def _check_patch(patch: int, patch_t: int) -> None:
    for name, value in (("patch", patch), ("patch_t", patch_t)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _patch_view(video: Tensor, patch: int, patch_t: int) -> Tensor:
    """``(B, C, T, H, W)`` -> its patches as a view ``(B, T', H', W', C, pt, p, p)`` (no copy)."""
    _check_video(video)
    _check_patch(patch, patch_t)
    b, c, t, h, w = video.shape
    if t % patch_t or h % patch or w % patch:
        raise ValueError(
            f"Video of size (T, H, W) = ({t}, {h}, {w}) is not divisible by the patch ({patch_t}, {patch}, {patch}); "
            f"pad it with pad_to_multiple first."
        )
    x = video.reshape(b, c, t // patch_t, patch_t, h // patch, patch, w // patch, patch)  # (B, C, T', pt, H', p, W', p)
    return x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, pt, p, p)


def patchify(video: Tensor, patch: int, patch_t: int) -> Tensor:
    """``(B, C, T, H, W)`` -> tokens ``(B, T/pt, H/p, W/p, C * pt * p * p)``."""
    x = _patch_view(video, patch, patch_t)  # (B, T', H', W', C, pt, p, p)
    return x.reshape(*x.shape[:4], -1)


def patchify_into(out: Tensor, video: Tensor, patch: int, patch_t: int, subtract: Tensor | None = None) -> Tensor:
    """Write ``patchify(video)`` (or ``patchify(video - subtract)``, the same floats) into ``out``
    ``(B, T', H', W', C * pt * p * p)``, e.g. a slice of the last axis of a larger token buffer, so a
    full-resolution copy is never made: large frames stay within memory. Returns ``out``."""
    x = _patch_view(video, patch, patch_t)  # (B, T', H', W', C, pt, p, p)
    if tuple(out.shape) != (*x.shape[:4], x.shape[4:].numel()):
        raise ValueError(
            f"The token buffer has shape {tuple(out.shape)}, the patches of {tuple(video.shape)} need "
            f"{(*x.shape[:4], x.shape[4:].numel())}."
        )
    view = out.unflatten(-1, tuple(x.shape[4:]))  # (B, T', H', W', C, pt, p, p), sharing out's memory
    view.copy_(x)
    if subtract is not None:
        view.sub_(_patch_view(subtract, patch, patch_t))
    return out


def unpatchify(tokens: Tensor, patch: int, patch_t: int, channels: int) -> Tensor:
    """Tokens ``(B, T', H', W', C * pt * p * p)`` -> video ``(B, C, T' * pt, H' * p, W' * p)``."""
    _check_patch(patch, patch_t)
    if tokens.ndim != 5:
        raise ValueError(
            f"tokens must have shape (B, T', H', W', D), got a tensor of rank {tokens.ndim}: {tuple(tokens.shape)}."
        )
    b, t, h, w, d = tokens.shape
    if d != channels * patch_t * patch * patch:
        raise ValueError(
            f"tokens have {d} features but {channels} channels with patch ({patch_t}, {patch}, {patch}) "
            f"need {channels * patch_t * patch * patch}."
        )
    x = tokens.reshape(b, t, h, w, channels, patch_t, patch, patch)  # (B, T', H', W', C, pt, p, p)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', pt, H', p, W', p)
    return x.reshape(b, channels, t * patch_t, h * patch, w * patch)


def pad_to_multiple(
    video: Tensor, multiple_t: int, multiple_hw: int, mode: str = "replicate"
) -> tuple[Tensor, Padding]:
    """Pad ``(B, C, T, H, W)`` at the end so T is a multiple of ``multiple_t`` and H, W of ``multiple_hw``.

    ``mode`` is ``"replicate"`` (default: no artificial edges to code), ``"constant"`` (zeros)
    or ``"reflect"`` (needs each pad shorter than its axis). Float input is expected.
    """
    _check_video(video)
    _check_patch(multiple_hw, multiple_t)
    if mode not in _PAD_MODES:
        raise ValueError(f"mode must be one of {_PAD_MODES}, got {mode!r}.")
    _, _, t, h, w = video.shape
    padding = Padding(t=-t % multiple_t, h=-h % multiple_hw, w=-w % multiple_hw)
    if padding == Padding():
        return video, padding
    if mode == "reflect" and (padding.t >= t or padding.h >= h or padding.w >= w):
        raise ValueError(
            f"Reflect padding by {padding} needs every pad shorter than its axis (T, H, W) = ({t}, {h}, {w}); "
            f"use mode='replicate'."
        )
    # F.pad order is last axis first: (W left, W right, H top, H bottom, T front, T back).
    padded = F.pad(video, (0, padding.w, 0, padding.h, 0, padding.t), mode=mode)
    return padded, padding


def crop(video: Tensor, padding: Padding) -> Tensor:
    """Remove the end padding recorded in ``padding`` from ``(B, C, T, H, W)``."""
    _check_video(video)
    _, _, t, h, w = video.shape
    if padding.t >= t or padding.h >= h or padding.w >= w:
        raise ValueError(f"Cannot crop {padding} from a video of size (T, H, W) = ({t}, {h}, {w}).")
    return video[:, :, : t - padding.t, : h - padding.h, : w - padding.w]
