"""Frozen, JSON-able configuration dataclasses, one per component.

Every config holds only ``int``, ``float``, ``bool``, ``str``, tuples of those, ``None`` or
another config, so ``json.dumps(config.to_dict())`` always works and checkpoints can embed the
exact config that built a module. ``from_dict`` turns JSON lists back into tuples and nested
dicts back into configs, and rejects unknown keys.

Each ``__post_init__`` validates its fields and raises ``ValueError`` with a sentence that says
what was wrong; configs that derive a default (``AttentionConfig.rope``) resolve it there, so
``to_dict`` always records the resolved value.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

_C = TypeVar("_C", bound="ConfigBase")

AXES: tuple[str, str, str] = ("t", "y", "x")


# --------------------------------------------------------------------------- helpers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_positive_int(name: str, value: Any) -> None:
    _require(_is_int(value) and value > 0, f"{name} must be a positive integer, got {value!r}.")


def _built(owner: str, fields: str, build: Callable[[], Any]) -> Any:
    """Build a component config; its ValueError is re-raised naming the owner's fields that caused it."""
    try:
        return build()
    except ValueError as e:
        raise ValueError(f"{owner} with {fields} cannot build its components: {e}") from None


def _require_radius(name: str, value: Any) -> None:
    _require(
        isinstance(value, tuple) and len(value) == 3 and all(_is_int(r) and r >= 0 for r in value),
        f"{name} must be a tuple of three non-negative integers (r_t, r_y, r_x), got {value!r}.",
    )


def _config_type(annotation: Any) -> type[ConfigBase] | None:
    """The config class named by a field annotation (also inside ``X | None``), if any."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, ConfigBase):
            return candidate
    return None


def _config_tuple_type(annotation: Any) -> type[ConfigBase] | None:
    """The config class ``X`` of a ``tuple[X, ...]`` annotation, if any."""
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return _config_type(args[0])
    return None


_TYPE_HINTS: dict[type, dict[str, Any]] = {}


def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a config class, cached (resolving them costs milliseconds)."""
    hints = _TYPE_HINTS.get(cls)
    if hints is None:
        hints = _TYPE_HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _to_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_to_tuples(item) for item in value)
    return value


class ConfigBase:
    """Mixin giving frozen config dataclasses a JSON-able ``to_dict`` / ``from_dict`` pair."""

    # Set by @dataclass on every subclass; declared so type checkers see configs as dataclasses.
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields; nested configs become dicts, tuples become lists."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls: type[_C], data: dict[str, Any]) -> _C:
        """Build the config from ``to_dict`` output (or its JSON round trip)."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"{cls.__name__} has no fields named {unknown}; known fields are {sorted(fields)}.")
        hints = _type_hints(cls)
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            nested = _config_type(hints[name])
            items = _config_tuple_type(hints[name])
            if nested is not None and isinstance(value, dict):
                kwargs[name] = nested.from_dict(value)
            elif items is not None and isinstance(value, (list, tuple)):
                kwargs[name] = tuple(items.from_dict(v) if isinstance(v, dict) else v for v in value)
            else:
                kwargs[name] = _to_tuples(value)
        return cls(**kwargs)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


# --------------------------------------------------------------------------- components


@dataclass(frozen=True)
class FSQConfig(ConfigBase):
    """Finite Scalar Quantization (Mentzer et al. 2023): number of levels per channel.

    Codebooks of any size are allowed; one-integer token *indices* exist only while the
    codebook fits an int64 (``has_indices``); larger ones are handled as per-channel symbols.
    """

    levels: tuple[int, ...] = (8, 5, 5, 5)

    def __post_init__(self) -> None:
        _require(
            isinstance(self.levels, tuple) and len(self.levels) > 0,
            f"FSQConfig.levels must be a non-empty tuple of integers, got {self.levels!r}.",
        )
        for level in self.levels:
            _require(
                _is_int(level) and 2 <= level <= 256,
                f"Every FSQ level must be an integer between 2 and 256 so symbols fit in uint8, "
                f"got {level!r} in {self.levels!r}.",
            )

    @property
    def codebook_size(self) -> int:
        size = 1
        for level in self.levels:
            size *= level
        return size

    @property
    def has_indices(self) -> bool:
        """Whether one int64 index per token can hold the whole codebook."""
        return self.codebook_size < 2**63


@dataclass(frozen=True)
class RoPEConfig(ConfigBase):
    """Axial 3D rotary position embedding (Su et al., RoFormer) over (t, y, x).

    ``axis_dims`` splits ``head_dim`` into three even parts for (t, y, x). When it is ``None``
    the split is as equal as possible in rotation pairs; a single spare pair goes to ``t``, two
    spare pairs go one each to ``y`` and ``x`` so the spatial axes stay symmetric.
    ``theta_jump`` is the temporal offset added per scene id (the scene-aware phase jump).
    """

    head_dim: int
    theta_base: float = 10000.0
    theta_jump: float = 10000.0
    axis_dims: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        _require(
            _is_int(self.head_dim) and self.head_dim >= 6 and self.head_dim % 2 == 0,
            f"RoPEConfig.head_dim must be an even integer of at least 6 (two per axis), got {self.head_dim!r}.",
        )
        _require(
            _is_number(self.theta_base) and self.theta_base > 1.0,
            f"RoPEConfig.theta_base must be a number greater than 1, got {self.theta_base!r}.",
        )
        _require(
            _is_number(self.theta_jump) and self.theta_jump >= 0.0,
            f"RoPEConfig.theta_jump must be a non-negative number, got {self.theta_jump!r}.",
        )
        if self.axis_dims is not None:
            dims = self.axis_dims
            _require(
                isinstance(dims, tuple) and len(dims) == 3 and all(_is_int(d) and d >= 2 and d % 2 == 0 for d in dims),
                f"RoPEConfig.axis_dims must be three even integers of at least 2 for (t, y, x), got {dims!r}.",
            )
            _require(
                sum(dims) == self.head_dim,
                f"RoPEConfig.axis_dims {dims!r} must sum to head_dim={self.head_dim}.",
            )

    @property
    def dims(self) -> tuple[int, int, int]:
        """The resolved (t, y, x) split of ``head_dim``."""
        if self.axis_dims is not None:
            return self.axis_dims
        pairs = self.head_dim // 2
        base, spare = divmod(pairs, 3)
        t_pairs = base + (1 if spare == 1 else 0)
        yx_pairs = base + (1 if spare == 2 else 0)
        return (2 * t_pairs, 2 * yx_pairs, 2 * yx_pairs)


@dataclass(frozen=True)
class AttentionConfig(ConfigBase):
    """Windowed (sliding-neighbourhood) axial attention; ``radius`` is (r_t, r_y, r_x) in tokens.

    ``rope`` defaults to ``RoPEConfig(head_dim=dim // heads)``. ``causal``: along t a token attends
    only to itself and the ``r_t`` token frames before it (a streaming encoder and decoder can then
    emit each token frame once its frames have arrived); y and x are unchanged.
    """

    dim: int
    heads: int
    radius: tuple[int, int, int] = (2, 3, 3)
    rope: RoPEConfig | None = None
    causal: bool = False

    def __post_init__(self) -> None:
        _require(isinstance(self.causal, bool), f"AttentionConfig.causal must be true or false, got {self.causal!r}.")
        _require_positive_int("AttentionConfig.dim", self.dim)
        _require_positive_int("AttentionConfig.heads", self.heads)
        _require(
            self.dim % self.heads == 0,
            f"AttentionConfig.dim={self.dim} must be divisible by heads={self.heads}.",
        )
        _require_radius("AttentionConfig.radius", self.radius)
        if self.rope is None:
            object.__setattr__(self, "rope", RoPEConfig(head_dim=self.dim // self.heads))
        _require(
            isinstance(self.rope, RoPEConfig) and self.rope.head_dim == self.dim // self.heads,
            f"AttentionConfig.rope.head_dim must equal dim // heads = {self.dim // self.heads}, "
            f"got {getattr(self.rope, 'head_dim', self.rope)!r}.",
        )

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class BlockConfig(ConfigBase):
    """One pre-norm axial transformer block: attention along t, y, x, then a GELU MLP."""

    dim: int
    heads: int
    mlp_ratio: float = 4.0
    radius: tuple[int, int, int] = (2, 3, 3)
    rope: RoPEConfig | None = None
    causal: bool = False  # temporal attention over past and present token frames only

    def __post_init__(self) -> None:
        _require(
            _is_number(self.mlp_ratio) and self.mlp_ratio > 0,
            f"BlockConfig.mlp_ratio must be a positive number, got {self.mlp_ratio!r}.",
        )
        # Validates dim, heads, radius and rope, and resolves the default rope.
        object.__setattr__(self, "rope", self.attention.rope)

    @property
    def attention(self) -> AttentionConfig:
        return AttentionConfig(dim=self.dim, heads=self.heads, radius=self.radius, rope=self.rope, causal=self.causal)

    @property
    def mlp_hidden(self) -> int:
        return max(1, int(round(self.dim * self.mlp_ratio)))


@dataclass(frozen=True)
class AxialTransformerConfig(ConfigBase):
    """A stack of ``depth`` identical-shape axial blocks followed by a final LayerNorm."""

    block: BlockConfig
    depth: int = 2

    def __post_init__(self) -> None:
        _require(
            isinstance(self.block, BlockConfig),
            f"AxialTransformerConfig.block must be a BlockConfig, got {self.block!r}.",
        )
        _require_positive_int("AxialTransformerConfig.depth", self.depth)


@dataclass(frozen=True)
class PyramidConfig(ConfigBase):
    """Spatial Laplacian pyramid (Burt & Adelson 1983) with ``levels`` levels (K)."""

    levels: int = 3

    def __post_init__(self) -> None:
        _require_positive_int("PyramidConfig.levels", self.levels)

    @property
    def multiple(self) -> int:
        """H and W must be divisible by this (2^(K-1))."""
        return 2 ** (self.levels - 1)


@dataclass(frozen=True)
class SceneCutConfig(ConfigBase):
    """Histogram shot-cut detector with an adaptive threshold.

    A frame ``t`` starts a new scene when its distance to frame ``t-1`` exceeds both
    ``threshold`` times the median distance in the ``window`` frames on each side and the
    absolute floor ``min_distance``; accepted cuts are at least ``min_scene_len`` frames apart.
    Frames are strided down so their long side is about ``analysis_size`` pixels.
    """

    threshold: float = 4.0
    min_distance: float = 0.08
    min_scene_len: int = 8
    window: int = 12
    bins: int = 32
    analysis_size: int = 128

    def __post_init__(self) -> None:
        _require(
            _is_number(self.threshold) and self.threshold > 1.0,
            f"SceneCutConfig.threshold is a ratio to the local median and must exceed 1, got {self.threshold!r}.",
        )
        _require(
            _is_number(self.min_distance) and 0.0 <= self.min_distance <= 1.0,
            f"SceneCutConfig.min_distance must lie in [0, 1], got {self.min_distance!r}.",
        )
        _require_positive_int("SceneCutConfig.min_scene_len", self.min_scene_len)
        _require_positive_int("SceneCutConfig.window", self.window)
        _require(
            _is_int(self.bins) and 2 <= self.bins <= 256,
            f"SceneCutConfig.bins must be an integer between 2 and 256, got {self.bins!r}.",
        )
        _require_positive_int("SceneCutConfig.analysis_size", self.analysis_size)


@dataclass(frozen=True)
class HyperpriorConfig(ConfigBase):
    """Scale hyperprior of one pyramid level (Ballé et al. 2018, "Variational image
    compression with a scale hyperprior").

    ``h_a`` merges ``merge = (m_t, m_y, m_x)`` latent tokens into one hyper token and maps them
    to ``hyper_channels`` values ``z``; ``h_s`` maps the rounded ``z_hat`` back to one scale per
    latent symbol. Symbols of ``y`` are coded with zero-mean discretized Gaussians taken from a
    bank of ``n_scales`` log-spaced scales in ``[sigma_floor, sigma_max]``; ``z`` with a learned
    per-channel Gaussian (mean, scale) from a bank of ``n_scales`` scales in ``z_scale_range``
    over ``[-z_support, z_support]``, values beyond it by the coder's escape.
    """

    hyper_channels: int = 32
    hidden: int = 128
    merge: tuple[int, int, int] = (2, 2, 2)
    sigma_floor: float = 0.3
    sigma_max: float = 8.0
    n_scales: int = 64
    z_support: int = 16
    z_scale_range: tuple[float, float] = (0.05, 32.0)

    def __post_init__(self) -> None:
        _require_positive_int("HyperpriorConfig.hyper_channels", self.hyper_channels)
        _require_positive_int("HyperpriorConfig.hidden", self.hidden)
        _require(
            isinstance(self.merge, tuple) and len(self.merge) == 3 and all(_is_int(m) and m >= 1 for m in self.merge),
            f"HyperpriorConfig.merge must be three positive integers (m_t, m_y, m_x), got {self.merge!r}.",
        )
        _require(
            _is_number(self.sigma_floor) and _is_number(self.sigma_max) and 0 < self.sigma_floor < self.sigma_max,
            f"HyperpriorConfig needs 0 < sigma_floor < sigma_max, got {self.sigma_floor!r} and {self.sigma_max!r}.",
        )
        _require(
            _is_int(self.n_scales) and 2 <= self.n_scales <= 1024,
            f"HyperpriorConfig.n_scales must be an integer in [2, 1024], got {self.n_scales!r}.",
        )
        _require(
            _is_int(self.z_support) and 1 <= self.z_support <= 1000,
            f"HyperpriorConfig.z_support must be an integer in [1, 1000], got {self.z_support!r}.",
        )
        lo_hi = self.z_scale_range
        _require(
            isinstance(lo_hi, tuple)
            and len(lo_hi) == 2
            and all(_is_number(v) for v in lo_hi)
            and 0 < lo_hi[0] < lo_hi[1],
            f"HyperpriorConfig.z_scale_range must be (low, high) with 0 < low < high, got {lo_hi!r}.",
        )


@dataclass(frozen=True)
class ContextConfig(ConfigBase):
    """The context entropy model of every level (``entropy/context.py``): which contexts its tables
    are conditioned on, and how often temporal context restarts.

    ``intra_period``: every ``intra_period``-th chunk (0, N, 2N, ...) is coded without the
    previous chunk, so a reader can start there and ``truncate`` keeps working.
    """

    scale_bins: int = 8
    temporal: bool = True
    coarser: bool = True
    channels: bool = True
    channel_changes: bool = True
    intra_period: int = 4
    hyper_from: int = 1  # levels below this send no hyper latent z (measured: at level 0 z costs more than it saves)

    def __post_init__(self) -> None:
        _require(
            _is_int(self.scale_bins) and 1 <= self.scale_bins <= 1024,
            f"ContextConfig.scale_bins must be an integer in [1, 1024], got {self.scale_bins!r}.",
        )
        for name in ("temporal", "coarser", "channels", "channel_changes"):
            value = getattr(self, name)
            _require(isinstance(value, bool), f"ContextConfig.{name} must be true or false, got {value!r}.")
        _require(
            _is_int(self.hyper_from) and self.hyper_from >= 0,
            f"ContextConfig.hyper_from must be a non-negative integer (a level), got {self.hyper_from!r}.",
        )
        _require(
            _is_int(self.intra_period) and self.intra_period >= 1,
            f"ContextConfig.intra_period must be a positive integer (chunks), got {self.intra_period!r}.",
        )


@dataclass(frozen=True)
class LevelConfig(ConfigBase):
    """One level of the Matryoshka pyramid: its transformer width and depths, latent channels
    and FSQ levels (every latent channel of a level has the same number of FSQ levels)."""

    dim: int
    heads: int
    latent_channels: int
    fsq_levels: int
    encoder_depth: int = 2
    decoder_depth: int = 2
    hyperprior: HyperpriorConfig = HyperpriorConfig()

    def __post_init__(self) -> None:
        for name in ("dim", "heads", "latent_channels", "encoder_depth", "decoder_depth"):
            _require_positive_int(f"LevelConfig.{name}", getattr(self, name))
        _require(
            isinstance(self.hyperprior, HyperpriorConfig),
            f"LevelConfig.hyperprior must be a HyperpriorConfig, got {self.hyperprior!r}.",
        )
        # The component configs check the rest (FSQ range, head size for the RoPE) with their own rules.
        _built("LevelConfig", f"fsq_levels={self.fsq_levels!r}", lambda: self.fsq)
        _built("LevelConfig", f"dim={self.dim}, heads={self.heads}", lambda: AttentionConfig(self.dim, self.heads))

    @property
    def fsq(self) -> FSQConfig:
        """The level's quantizer: ``latent_channels`` channels of ``fsq_levels`` values each."""
        return FSQConfig(levels=(self.fsq_levels,) * self.latent_channels)


@dataclass(frozen=True)
class CodecConfig(ConfigBase):
    """The whole MPT-VC codec.

    All K levels share one token grid of ``(T / patch_t, H / patch, W / patch)``: level k works
    at resolution ``1 / 2^(K-1-k)`` with spatial patch ``patch / 2^(K-1-k)``. Video is coded in
    independent chunks of ``chunk_frames`` frames; spatially, frames larger than ``tile`` are run
    through the networks in overlapping tiles of ``tile`` pixels (``tile_overlap`` pixels shared)
    blended with a partition of unity. Tiles are seamless when the overlap is at least twice a
    transformer's reach plus one token (``2 * depth * radius + 1`` tokens).

    ``causal``: the causal variant (``causal.py``): every transformer attends along t to past and
    present token frames only, chunks run at their full length (``chunk_frames``) whatever their
    content so a token frame's symbols never depend on later frames, and shot cuts are detected
    without lookahead (``scenes.CausalSceneCutStream``).
    """

    levels: tuple[LevelConfig, ...]
    patch: int = 8
    patch_t: int = 4
    chunk_frames: int = 32
    mlp_ratio: float = 4.0
    radius: tuple[int, int, int] = (2, 3, 3)
    theta_base: float = 10000.0
    theta_jump: float = 10000.0
    tile: tuple[int, int] = (480, 864)
    tile_overlap: tuple[int, int] = (128, 128)
    name: str = "custom"
    context: ContextConfig | None = None  # the context entropy model; None: the scale hyperprior alone
    causal: bool = False  # the causal variant (tokens depend on past and present frames only)

    def to_dict(self) -> dict[str, Any]:
        """As ``ConfigBase.to_dict``; ``context`` is left out while it is ``None`` and ``causal``
        while it is false, so configs of other variants serialize as they did before these existed
        (files keep their bytes)."""
        data = super().to_dict()
        if data.get("context") is None:
            data.pop("context", None)
        if data.get("causal") is False:
            data.pop("causal")
        return data

    def __post_init__(self) -> None:
        _require(
            isinstance(self.levels, tuple)
            and len(self.levels) >= 1
            and all(isinstance(level, LevelConfig) for level in self.levels),
            f"CodecConfig.levels must be a non-empty tuple of LevelConfig, got {self.levels!r}.",
        )
        for name in ("patch", "patch_t", "chunk_frames"):
            _require_positive_int(f"CodecConfig.{name}", getattr(self, name))
        k = len(self.levels)
        _require(
            self.patch % 2 ** (k - 1) == 0,
            f"CodecConfig.patch ({self.patch}) must be divisible by 2^(levels-1) = {2 ** (k - 1)} so every "
            f"level has a whole patch.",
        )
        _require(
            self.chunk_frames % self.temporal_multiple == 0,
            f"CodecConfig.chunk_frames ({self.chunk_frames}) must be a multiple of {self.temporal_multiple} "
            f"(patch_t times the hyperprior's temporal merge).",
        )
        _require_radius("CodecConfig.radius", self.radius)
        for name in ("tile", "tile_overlap"):
            value = getattr(self, name)
            _require(
                isinstance(value, tuple) and len(value) == 2 and all(_is_int(v) and v >= 0 for v in value),
                f"CodecConfig.{name} must be two non-negative integers (height, width), got {value!r}.",
            )
        m = self.spatial_multiple
        _require(
            all(t % m == 0 and t > 0 for t in self.tile)
            and all(o % m == 0 and o < t for o, t in zip(self.tile_overlap, self.tile, strict=True)),
            f"CodecConfig.tile {self.tile} and tile_overlap {self.tile_overlap} must be multiples of {m} "
            f"with the overlap smaller than the tile.",
        )

        _require(
            _is_number(self.mlp_ratio) and self.mlp_ratio > 0,
            f"CodecConfig.mlp_ratio must be a positive number, got {self.mlp_ratio!r}.",
        )
        _require(isinstance(self.causal, bool), f"CodecConfig.causal must be true or false, got {self.causal!r}.")
        _require(
            self.context is None or isinstance(self.context, ContextConfig),
            f"CodecConfig.context must be a ContextConfig or None, got {self.context!r}.",
        )
        for k, level in enumerate(self.levels):
            fields = (
                f"levels[{k}] (dim={level.dim}, heads={level.heads}), radius={self.radius}, "
                f"theta_base={self.theta_base!r} and theta_jump={self.theta_jump!r}"
            )
            _built("CodecConfig", fields, functools.partial(self.transformer, k, "encoder"))

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    @property
    def pyramid(self) -> PyramidConfig:
        """The Laplacian pyramid of ``num_levels`` levels."""
        return PyramidConfig(levels=self.num_levels)

    def level_patch(self, k: int) -> int:
        """Spatial patch size of level ``k`` at its own resolution."""
        return self.patch // 2 ** (self.num_levels - 1 - k)

    def rope(self, k: int) -> RoPEConfig:
        """The 3D RoPE of level ``k``'s attention heads (with the scene phase jump)."""
        level = self.levels[k]
        return RoPEConfig(head_dim=level.dim // level.heads, theta_base=self.theta_base, theta_jump=self.theta_jump)

    def transformer(self, k: int, side: str) -> AxialTransformerConfig:
        """The axial transformer of level ``k``'s ``"encoder"`` (g_a) or ``"decoder"`` (g_s)."""
        if side not in ("encoder", "decoder"):
            raise ValueError(f"side must be 'encoder' or 'decoder', got {side!r}.")
        level = self.levels[k]
        block = BlockConfig(
            dim=level.dim,
            heads=level.heads,
            mlp_ratio=self.mlp_ratio,
            radius=self.radius,
            rope=self.rope(k),
            causal=self.causal,
        )
        return AxialTransformerConfig(
            block=block, depth=level.encoder_depth if side == "encoder" else level.decoder_depth
        )

    @property
    def reach(self) -> tuple[int, int]:
        """How far (y, x) in tokens the deepest transformer sees: tokens that close to a cut tile
        edge get no weight when tiles are blended."""
        depth = max(max(level.encoder_depth, level.decoder_depth) for level in self.levels)
        return depth * self.radius[1], depth * self.radius[2]

    @property
    def spatial_multiple(self) -> int:
        """Frames are padded to a multiple of this in height and width (patch times hyper merge)."""
        return self.patch * max(max(level.hyperprior.merge[1:]) for level in self.levels)

    @property
    def temporal_multiple(self) -> int:
        """Chunks are padded to a multiple of this many frames."""
        return self.patch_t * max(level.hyperprior.merge[0] for level in self.levels)
