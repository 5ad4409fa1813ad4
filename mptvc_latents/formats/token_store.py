"""The token store, layout v3 (``docs/token_store.md``): one zarr v3 group of FSQ symbols per clip.

::

    STORE.zarr/                         attrs: format, version, checkpoint {digest, tables_digest, config}
      clips/
        <key>/                          attrs: source, sha256, fps, frames, height, width, padding,
                                               scene_ids ([[id, length], ...]), levels, complete (written last)
          level_0  uint8 (T', H', W', C_0)   chunk: one codec chunk in time x full H', W'; sharded; zstd
          level_1  ...
          mask     uint8 (T', K)         v3, rate-controlled clips only (attrs: rate): 1 where level k of
                                         token frame t holds sent tokens (``types.Tokens.mask``)

A clip is written arrays first and marked ``complete: true`` last; readers only ever see complete
clips, and a writer that finds an incomplete one (a crash) deletes and rewrites it.

Layout v2 differs only in having no ``mask`` (every token of every level was sent), layout v1
also in ``scene_ids``, run starts ``[[first_frame, id], ...]``. v1 and v2 stores still open and
read, and a store keeps its layout: clips written into a v1 store (a resumed ``tokenize``) are
written in v1; a rate-controlled clip needs a v3 store. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from mptvc_latents.types import Padding, SceneRun, Tokens, VideoInfo, scene_ids_from_runs, scene_runs

if TYPE_CHECKING:
    import zarr

    from mptvc_latents.codec import MPTVC

__all__ = [
    "FORMAT",
    "READABLE_VERSIONS",
    "VERSION",
    "ClipMeta",
    "StoreCheckpointError",
    "TokenStore",
    "clip_key",
    "file_sha256",
    "weights_digest",
]

FORMAT = "mptvc-token-store"
VERSION = 3  # the layout new stores get
READABLE_VERSIONS = (1, 2, 3)
MASK_VERSION = 3  # the first layout that holds rate-controlled clips (a mask of the tokens sent)
ZSTD_LEVEL = 3
MAX_CHUNKS_PER_SHARD = 64  # a shard holds at most 64 codec chunks in time (2048 frames at 32 a chunk)


class StoreCheckpointError(ValueError):
    """The store was written with another checkpoint (symbols only mean something to their codec)."""


def weights_digest(model: MPTVC) -> str:
    """The store's checkpoint key: ``model.weights_digest()`` (every tensor, since symbols
    depend on the encoder's weights too, which ``tables_digest`` leaves out)."""
    return model.weights_digest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def clip_key(path: str | Path, root: str | Path | None = None) -> str:
    """A stable, zarr-safe name for a source: its name relative to ``root`` (the folder it was found
    in; default its parent) with other characters than ``[A-Za-z0-9._-]`` replaced, then ``-`` and 10
    hex digits of the sha256 of the absolute path, so equal names in different folders never meet.
    ``clip_key("data/a/b c.mp4", "data") == "a_b_c-<10 hex>"``."""
    path = Path(path).resolve()
    rel = path.relative_to(Path(root).resolve()) if root is not None else Path(path.name)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", rel.with_suffix("").as_posix()).strip("._") or "clip"
    return f"{name[:80]}-{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"


# --------------------------------------------------------------------------- clips


class ClipMeta(dict):
    """A clip's attributes (plain JSON): built from a source and its tokens, turned back into ``VideoInfo``."""

    @classmethod
    def build(cls, tokens: Tokens, source: str | Path, sha256: str, levels: int) -> ClipMeta:
        """The attributes of a clip in the current layout (v3; rate attributes are added by ``finish``)."""
        return cls.of(tokens.info, source, sha256, levels)

    @classmethod
    def of(cls, info: VideoInfo, source: str | Path, sha256: str, levels: int) -> ClipMeta:
        """The attributes of a clip of ``info`` in the current layout (v3; rate attributes are added by
        ``ClipWriter.finish``)."""
        return cls(
            source=str(source),
            sha256=sha256,
            fps=float(info.fps),
            frames=int(info.frames),
            height=int(info.height),
            width=int(info.width),
            padding={"t": info.padding.t, "h": info.padding.h, "w": info.padding.w},
            scene_ids=[[run.id, run.length] for run in scene_runs(info.scene_ids)],
            levels=int(levels),
        )

    def video_info(self, layout: int = VERSION) -> VideoInfo:
        """The ``VideoInfo`` of attributes written in store layout ``layout``.

        Raises:
            ValueError: when ``scene_ids`` does not describe the clip's padded frames.
        """
        pad = Padding(**self["padding"])
        padded = self["frames"] + pad.t
        runs = self["scene_ids"] if layout >= 2 else _v1_scene_ids_to_runs(self["scene_ids"], padded)
        scene_ids = scene_ids_from_runs(runs, padded)
        return VideoInfo(self["frames"], self["height"], self["width"], self["fps"], pad, scene_ids)


@contextmanager
def _quiet() -> Iterator[None]:
    # zarr warns that consolidated metadata is not yet part of the v3 spec; the store documents it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        # Listing a folder that a crashed writer left without metadata; such clips are not complete.
        warnings.filterwarnings("ignore", message=".*is not recognized as a component of a Zarr hierarchy.*")
        yield


class TokenStore:
    """A zarr v3 group of token clips written by one checkpoint (layout v3, ``docs/token_store.md``).

    ``create`` makes a new store for ``model``; ``open`` opens one (layout v1, v2 or v3), and raises
    :class:`StoreCheckpointError` when ``model`` is given and is not the checkpoint that wrote it.
    Readers (``writable=False``) use the consolidated metadata; writers list the clips from disk.
    ``version`` is the store's layout, which clips written into it follow.
    """

    def __init__(self, path: Path, root: zarr.Group, writable: bool) -> None:
        self.path, self._root, self.writable = path, root, writable
        self.version = cast(int, root.attrs["version"])  # one of READABLE_VERSIONS: open checked it

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, path: str | Path, model: MPTVC) -> TokenStore:
        """A new, empty store at ``path`` (which must not exist yet)."""
        import zarr

        path = Path(path)
        if path.exists():
            raise ValueError(f"{str(path)!r} already exists; open it with TokenStore.open or pick a new path.")
        with _quiet():
            attributes = {
                "format": FORMAT,
                "version": VERSION,
                "checkpoint": {
                    "digest": weights_digest(model),
                    "tables_digest": model.tables_digest(),
                    "config": model.config.to_dict(),
                },
            }
            # One metadata write: a crash cannot leave a root without its format and checkpoint.
            root = zarr.create_group(zarr.storage.LocalStore(path), zarr_format=3, attributes=attributes)
            root.create_group("clips")
            zarr.consolidate_metadata(root.store)
        return cls.open(path, model, writable=True)

    @classmethod
    def open(cls, path: str | Path, model: MPTVC | None = None, writable: bool = False) -> TokenStore:
        """Open an existing store; with ``model``, check that it is the checkpoint that wrote it."""
        import zarr

        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise ValueError(f"{str(path)!r} is not a token store (no zarr.json); make one with `mptvc tokenize`.")
        with _quiet():
            store = zarr.storage.LocalStore(path, read_only=not writable)
            # Writers must see the clips on disk, not the listing of the last consolidation.
            root = zarr.open_group(store, mode="r+" if writable else "r", use_consolidated=False if writable else None)
        attrs = dict(root.attrs)
        if attrs.get("format") != FORMAT:
            raise ValueError(
                f"{str(path)!r} is a zarr group but not an MPT-VC token store (format {attrs.get('format')!r})."
            )
        if attrs.get("version") not in READABLE_VERSIONS:
            raise ValueError(
                f"{str(path)!r} is token store layout v{attrs.get('version')}; this version of mptvc reads layouts "
                f"{', '.join(f'v{v}' for v in READABLE_VERSIONS)} only; read it with the mptvc that wrote it."
            )
        if writable:
            root.require_group("clips")  # a crash during create can leave the root alone
        self = cls(path, root, writable)
        if model is not None:
            self.check_model(model)
        return self

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._root.attrs)

    def check_model(self, model: MPTVC) -> None:
        """Raise :class:`StoreCheckpointError` unless ``model`` is the checkpoint that wrote the store."""
        theirs = self.attrs["checkpoint"]
        ours = weights_digest(model)
        if ours != theirs["digest"]:
            raise StoreCheckpointError(
                f"The token store {str(self.path)!r} was written with another checkpoint (digest "
                f"{theirs['digest'][:12]}..., config {theirs['config'].get('name')!r}) than this one "
                f"({ours[:12]}..., {model.config.name!r}); a store never mixes checkpoints: use the one that "
                f"wrote it (--ckpt) or a new store."
            )

    def consolidate(self) -> None:
        """Rewrite the consolidated metadata (readers' one-read listing of every clip and its attributes)."""
        import zarr

        with _quiet():
            zarr.consolidate_metadata(self._root.store)

    # ------------------------------------------------------------------ clips

    def _clips_group(self) -> zarr.Group:
        return cast("zarr.Group", self._root["clips"])

    def clip_attrs(self, key: str) -> ClipMeta | None:
        """The attributes of clip ``key``, or None when it is absent, unreadable or not complete."""
        try:
            attrs = ClipMeta(self._clips_group()[key].attrs)
        except (KeyError, ValueError, OSError):  # absent, or metadata cut short by a crash
            return None
        return attrs if attrs.get("complete") is True else None

    def clips(self) -> list[str]:
        """Keys of the complete clips, sorted."""
        with _quiet():
            keys = [key for key, _ in self._clips_group().groups()]
        return sorted(key for key in keys if self.clip_attrs(key) is not None)

    def sweep(self, resumable: Collection[str] = ()) -> list[str]:
        """Delete what a crashed writer left: incomplete clips, and zarr's temp files (``*.partial``)
        beside the root and clips metadata. An incomplete clip whose key is in ``resumable`` and that
        recorded written chunks is kept (its temp files go), for ``begin_clip(..., resume=True)``.
        Returns the keys of the clips deleted. Only for the one writer of the store (``tokenize`` calls
        it when it starts): it would delete a clip that another writer is writing."""
        if not self.writable:
            raise ValueError(f"The token store {str(self.path)!r} was opened read-only.")
        for folder in (self.path, self.path / "clips"):
            for tmp in folder.glob("*.partial"):
                tmp.unlink(missing_ok=True)
        removed = []
        for folder in sorted(p for p in (self.path / "clips").iterdir() if p.is_dir()):
            if self.clip_attrs(folder.name) is not None:
                continue
            if folder.name in resumable and self._chunks_written(folder.name):
                for tmp in folder.rglob("*.partial"):
                    tmp.unlink(missing_ok=True)
                continue
            shutil.rmtree(folder)
            removed.append(folder.name)
        return removed

    def _chunks_written(self, key: str) -> int:
        """Chunks an incomplete clip recorded as written (0 when it recorded none, or is unreadable)."""
        try:
            written = self._clips_group()[key].attrs.get("chunks_written", 0)
        except (KeyError, ValueError, OSError):
            return 0
        return written if isinstance(written, int) else 0

    def discard(self, key: str) -> None:
        """Delete clip ``key`` if it is incomplete (a writer that failed on a bad source)."""
        if not self.writable:
            raise ValueError(f"The token store {str(self.path)!r} was opened read-only.")
        clips = self._clips_group()
        with _quiet():
            if key in clips and self.clip_attrs(key) is None:
                del clips[key]

    def __contains__(self, key: str) -> bool:
        return self.clip_attrs(key) is not None

    def write_clip(self, key: str, tokens: Tokens, meta: Mapping[str, Any]) -> None:
        """Write clip ``key``: attributes (not complete), every level as a whole array, then ``complete``.

        ``meta`` holds the attributes in the current layout (:meth:`ClipMeta.build`); a v1 store gets
        ``scene_ids`` in its own layout. Anything already under ``key`` (a clip cut short by a crash, or
        an older version) is deleted first.
        """
        levels = int(meta.get("levels", len(tokens.symbols)))
        if not 1 <= levels <= len(tokens.symbols):
            raise ValueError(f"levels={levels} is out of range: the tokens hold {len(tokens.symbols)} levels.")
        writer = self.begin_clip(key, str(meta["source"]), str(meta["sha256"]), levels, len(tokens.symbols[0]))
        writer.append(list(tokens.symbols[:levels]))
        writer.finish(meta)

    def begin_clip(
        self, key: str, source: str, sha256: str, levels: int, length: int | None = None, resume: bool = False
    ) -> ClipWriter:
        """A :class:`ClipWriter` for clip ``key``, whose arrays grow a codec chunk at a time.

        ``length``: the expected token frames, if known, sizes the shards as :meth:`write_clip` does
        (up to 64 chunks, or the whole clip; unknown: 64). With ``resume``, an incomplete clip of
        the same ``sha256`` and ``levels`` keeps the chunks it recorded as written
        (``writer.chunks_written``) and the writer continues after them; anything else under
        ``key`` is deleted first.
        """
        if not self.writable:
            raise ValueError(f"The token store {str(self.path)!r} was opened read-only.")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", key):
            raise ValueError(
                f"Clip key {key!r} must be letters, digits, '.', '_' or '-' and start with a letter or digit."
            )
        clips = self._clips_group()
        chunk_t = self._chunk_t()
        # The zarr chunk is a codec chunk in time, or the whole clip when shorter; a shard up to 64 of them.
        array_chunk = chunk_t if length is None else max(1, min(chunk_t, length))
        shard_chunks = MAX_CHUNKS_PER_SHARD if length is None else min(MAX_CHUNKS_PER_SHARD, -(-length // array_chunk))
        with _quiet():
            if resume:
                writer = ClipWriter.resume(self, key, sha256, levels)
                if writer is not None:
                    return writer
            if key in clips:
                del clips[key]
            attributes = {"source": source, "sha256": sha256, "levels": int(levels), "complete": False}
            progress = {"chunks_written": 0, "array_chunk": array_chunk, "shard_chunks": shard_chunks}
            group = clips.create_group(key, attributes={**attributes, **progress})
        return ClipWriter(self, group, levels, chunk_t, (array_chunk, shard_chunks), 0)

    def _chunk_t(self) -> int:
        config = self.attrs["checkpoint"]["config"]
        return config["chunk_frames"] // config["patch_t"]

    def level_array(self, key: str, k: int) -> zarr.Array:
        clip = cast("zarr.Group", self._clips_group()[key])
        return cast("zarr.Array", clip[f"level_{k}"])

    def read_tokens(self, key: str, k_max: int | None = None, lazy: bool = False) -> Tokens:
        """Clip ``key``'s symbols of levels ``0 .. k_max`` (default: every level written) and its ``VideoInfo``.

        ``lazy``: the symbols are the zarr arrays themselves, read when sliced (``MPTVC.decode_stream``
        reads a chunk at a time), instead of numpy arrays of the whole clip.
        """
        meta = self.clip_attrs(key)
        if meta is None:
            raise KeyError(f"The token store {str(self.path)!r} has no complete clip {key!r}.")
        levels = meta["levels"]
        k_max = levels - 1 if k_max is None else k_max
        if not 0 <= k_max < levels:
            raise ValueError(f"k_max={k_max} is out of range: clip {key!r} holds levels 0..{levels - 1}.")
        try:
            info = meta.video_info(self.version)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"Clip {key!r} of the token store {str(self.path)!r} has attributes that do not describe its video "
                f"({str(e).rstrip('.')}); tokenize its source again."
            ) from e
        arrays = [self.level_array(key, k) for k in range(k_max + 1)]
        symbols = arrays if lazy else [np.asarray(array[...]) for array in arrays]
        mask = self.read_mask(key)
        return Tokens(cast("list[np.ndarray]", symbols), info, None if mask is None else mask[:, : k_max + 1])

    def read_mask(self, key: str) -> np.ndarray | None:
        """uint8 ``(T', K)`` of a rate-controlled clip: 1 where level k of token frame t holds sent
        tokens (``types.Tokens.mask``); None for a clip that sent everything (and every v1/v2 clip)."""
        clip = cast("zarr.Group", self._clips_group()[key])
        if "mask" not in clip:
            return None
        return np.asarray(cast("zarr.Array", clip["mask"])[...])

    def read_timestamps(self, key: str) -> np.ndarray | None:
        """Presentation times in seconds ``(frames,)`` of clip ``key``'s source frames (NaN where the
        file had none), or None for clips written before the store kept them."""
        clip = cast("zarr.Group", self._clips_group()[key])
        if "timestamps" not in clip:
            return None
        return np.asarray(cast("zarr.Array", clip["timestamps"])[...])


class ClipWriter:
    """Writes one clip of a :class:`TokenStore` a codec chunk at a time (``TokenStore.begin_clip``).

    ``append`` grows every level's array by a chunk's symbols and then records ``chunks_written``
    in the clip's attributes, so a crash loses at most the chunk being written: ``begin_clip(...,
    resume=True)`` continues after the last one recorded. ``finish`` writes the clip's attributes
    (and its frames' timestamps) and marks it ``complete`` last; readers never see it before.
    """

    def __init__(
        self, store: TokenStore, group: zarr.Group, levels: int, chunk_t: int, layout: tuple[int, int], written: int
    ) -> None:
        self.store, self.group, self.levels = store, group, levels
        self.chunk_t, self.chunks_written = chunk_t, written  # token frames of a codec chunk; chunks done
        self.array_chunk, self.shard_chunks = layout  # the arrays' zarr chunk in time, and chunks per shard

    @classmethod
    def resume(cls, store: TokenStore, key: str, sha256: str, levels: int) -> ClipWriter | None:
        """The writer of the incomplete clip ``key`` if it is one of this source and levels, else None."""
        try:
            group = cast("zarr.Group", store._clips_group()[key])
            attrs = dict(group.attrs)
        except (KeyError, ValueError, OSError):
            return None
        written = attrs.get("chunks_written")
        if attrs.get("complete") is not False or attrs.get("sha256") != sha256 or attrs.get("levels") != levels:
            return None
        if not isinstance(written, int) or written < 1:
            return None
        length = written * store._chunk_t()
        try:
            for k in range(levels):
                array = cast("zarr.Array", group[f"level_{k}"])
                if array.shape[0] < length:
                    return None
                if array.shape[0] > length:  # a chunk cut short by the crash: written again
                    array.resize((length, *array.shape[1:]))
        except (KeyError, ValueError, OSError):
            return None
        layout = (cast(int, attrs["array_chunk"]), cast(int, attrs["shard_chunks"]))
        return cls(store, group, levels, store._chunk_t(), layout, written)

    def append(self, symbols: list[np.ndarray]) -> None:
        """Add the next chunk(s): ``symbols[k]`` uint8 ``(T', H', W', C_k)`` for each level written."""
        from zarr.codecs import ZstdCodec

        if len(symbols) < self.levels:
            raise ValueError(f"The clip stores {self.levels} levels, got symbols of {len(symbols)}.")
        with _quiet():
            for k in range(self.levels):
                data = np.ascontiguousarray(symbols[k], dtype=np.uint8)  # (T', H', W', C_k)
                name = f"level_{k}"
                if name not in self.group:
                    _, h, w, c = data.shape
                    self.group.create_array(
                        name,
                        shape=(0, h, w, c),
                        dtype="uint8",
                        chunks=(self.array_chunk, h, w, c),
                        shards=(self.array_chunk * self.shard_chunks, h, w, c),
                        compressors=ZstdCodec(level=ZSTD_LEVEL, checksum=True),
                        fill_value=0,
                        dimension_names=("t", "h", "w", "c"),
                    )
                array = cast("zarr.Array", self.group[name])
                start = array.shape[0]
                array.resize((start + data.shape[0], *array.shape[1:]))
                array[start:] = data
            self.chunks_written += -(-symbols[0].shape[0] // self.chunk_t)
            self.group.attrs.update({"chunks_written": self.chunks_written})

    def finish(
        self,
        meta: Mapping[str, Any],
        timestamps: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        rate: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the clip's attributes (:meth:`ClipMeta.build`; a v1 store gets ``scene_ids`` in its
        layout), ``timestamps`` (seconds, one per source frame) and, for a rate-controlled clip, its
        ``mask`` of sent tokens (uint8 ``(T', levels)``) and ``rate`` attributes (the target, levels per
        chunk), then mark it complete.

        Raises:
            ValueError: for a mask in a store of a layout before v3, or of the wrong shape.
        """
        attributes = {**meta, "levels": self.levels, "complete": False}
        if self.store.version == 1:
            attributes["scene_ids"] = _runs_to_v1_scene_ids(attributes["scene_ids"])
        if mask is not None:
            if self.store.version < MASK_VERSION:
                raise ValueError(
                    f"The token store {str(self.store.path)!r} is layout v{self.store.version}, which cannot record "
                    f"which tokens a rate-controlled clip sent; tokenize with a target into a new store."
                )
            mask = np.ascontiguousarray(mask, dtype=np.uint8)
            length = cast("zarr.Array", self.group["level_0"]).shape[0]
            if mask.shape != (length, self.levels) or mask.max(initial=0) > 1:
                raise ValueError(
                    f"The mask of sent tokens must be 0/1 of shape ({length}, {self.levels}), got {mask.shape}."
                )
            attributes["rate"] = dict(rate or {})
        with _quiet():
            if mask is not None:
                self.group.create_array("mask", data=mask, chunks=mask.shape, overwrite=True)
            if timestamps is not None:
                times = np.asarray(timestamps, dtype=np.float64)  # (frames,)
                self.group.create_array("timestamps", data=times, chunks=times.shape or (1,), overwrite=True)
            self.group.attrs.put(attributes)  # drops the progress record (chunks_written, the array layout)
            self.group.attrs.update({"complete": True})


# --------------------------------------------------------------------------- layout v1, kept readable


def _v1_scene_ids_to_runs(v1_runs: list[list[int]], frames: int) -> list[SceneRun]:
    """Layout v1's ``scene_ids``, run starts ``[[first_frame, id], ...]``, as the runs of v2.

    Checked by :func:`scene_ids_from_runs` afterwards: starts that are not 0, increasing and below
    ``frames`` give a run of no frames or runs that do not cover ``frames``.
    """
    firsts = [int(first) for first, _ in v1_runs]
    ends = firsts[1:] + [frames]
    return [SceneRun(int(i), end - first) for (first, i), end in zip(v1_runs, ends, strict=True)]


def _runs_to_v1_scene_ids(runs: list[list[int]]) -> list[list[int]]:
    """The inverse of :func:`_v1_scene_ids_to_runs`, for clips written into a v1 store."""
    starts, first = [], 0
    for i, length in runs:
        starts.append([first, int(i)])
        first += int(length)
    return starts
