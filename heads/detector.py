"""``CenterHead``: a small CenterNet-style detector with an appearance embedding, on one grid.

Data flow (all at the token grid, stride 8 px)::

    features (B, C_in, H', W') -> 1x1 stem -> depth x residual [3x3 conv (dilated), GroupNorm, GELU] (B, dim, H', W')
        -> heatmap logits (B, 1, H', W')   offset (B, 2, H', W')   log-size (B, 2, H', W')
        -> embedding (B, E, H', W'), L2-normalised per cell (for tracking)

The residual blocks cycle through ``dilations`` (default 1, 2, 4, 8), so four blocks see
1 + 2 * (1 + 2 + 4 + 8) = 31 cells (248 px) around each cell instead of 9 (72 px) with plain 3x3
convolutions: a centre cell must see the whole person to place its centre and size, and people
in the tracking sequences are 50-290 px tall. The parameter count does not change.

The same architecture reads FSQ codes of a level prefix (C_in = 4/16/40) or patchified pixels
(C_in = 768); only the stem differs. Saved hub-style: ``config.json`` + ``model.safetensors``,
loaded strictly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mptvc_latents.hub import StrictHubMixin

__all__ = ["DetectorConfig", "CenterHead", "HeadOutput"]

# CenterNet's prior for the heatmap bias: sigmoid(-2.19) ~ 0.1, so early focal losses stay sane.
_HEATMAP_PRIOR = -2.19


@dataclass(frozen=True)
class DetectorConfig:
    """in_channels: input channels per cell; dim/depth: trunk width and residual blocks;
    embed_dim: appearance embedding size; input: what it reads ("tokens", "decoded" or "source");
    k: the level prefix it reads (tokens) or was decoded from (decoded); dilations: the dilation
    of each residual block, cycled over ``depth`` blocks; work_height: frames taller than this are
    shrunk to it before tokenizing (what the head was trained at; 0: as given); codec: the weights
    digest of the codec whose tokens it reads ("" when not recorded); threshold: the score from which
    ``mptvc heads detect`` reports a box and the tracker's high threshold (``heads.calibrate``)."""

    in_channels: int
    dim: int = 64
    depth: int = 4
    embed_dim: int = 16
    input: str = "tokens"
    k: int = 2
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    work_height: int = 0
    codec: str = ""
    threshold: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(self.dilations))  # JSON gives a list
        if not self.dilations or any(not isinstance(d, int) or d < 1 for d in self.dilations):
            raise ValueError(f"DetectorConfig.dilations must be positive integers, got {self.dilations!r}.")
        if self.in_channels < 1 or self.dim < 8 or self.depth < 1 or self.embed_dim < 2:
            raise ValueError(
                f"DetectorConfig needs in_channels >= 1, dim >= 8, depth >= 1, embed_dim >= 2, got {self}."
            )
        if not 0 < self.threshold < 1:
            raise ValueError(f"DetectorConfig.threshold must lie in (0, 1), got {self.threshold!r}.")
        if not isinstance(self.work_height, int) or self.work_height < 0:
            raise ValueError(f"DetectorConfig.work_height must be 0 or a height in px, got {self.work_height!r}.")
        if self.dim % 8:
            raise ValueError(f"DetectorConfig.dim must be a multiple of 8 (GroupNorm groups), got {self.dim}.")
        if self.input not in ("tokens", "decoded", "source"):
            raise ValueError(f"DetectorConfig.input must be 'tokens', 'decoded' or 'source', got {self.input!r}.")


@dataclass
class HeadOutput:
    """Per-cell predictions: heatmap logits (B, 1, H', W'), offset and size (B, 2, H', W'),
    embedding (B, E, H', W') unit-norm."""

    heatmap: Tensor
    offset: Tensor
    size: Tensor
    embedding: Tensor


class _Block(nn.Module):
    def __init__(self, dim: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation)
        self.norm = nn.GroupNorm(8, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + F.gelu(self.norm(self.conv(x)))


def _encode_config(config: DetectorConfig) -> dict:
    return dataclasses.asdict(config)


def _decode_config(data: dict) -> DetectorConfig:
    return DetectorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class CenterHead(
    nn.Module,
    StrictHubMixin,
    library_name="mptvc-latents",
    tags=["video", "detection", "tokens"],
    coders={DetectorConfig: (_encode_config, _decode_config)},
):
    """CenterNet-style head on a token grid; see the module docstring for the shapes."""

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        if isinstance(config, dict):  # from config.json
            config = _decode_config(config)
        self.config = config
        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, config.dim, 1), nn.GroupNorm(8, config.dim), nn.GELU())
        cycle = config.dilations
        self.trunk = nn.Sequential(*[_Block(config.dim, cycle[i % len(cycle)]) for i in range(config.depth)])
        self.out = nn.Conv2d(config.dim, 1 + 2 + 2 + config.embed_dim, 1)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[0] = _HEATMAP_PRIOR

    def forward(self, features: Tensor) -> HeadOutput:
        if features.ndim != 4 or features.shape[1] != self.config.in_channels:
            raise ValueError(f"features must be (B, {self.config.in_channels}, H, W), got {tuple(features.shape)}.")
        y = self.out(self.trunk(self.stem(features)))  # (B, 5 + E, H', W')
        return HeadOutput(
            heatmap=y[:, :1],
            offset=torch.sigmoid(y[:, 1:3]),
            size=y[:, 3:5],
            embedding=F.normalize(y[:, 5:], dim=1),
        )
