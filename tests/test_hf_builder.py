"""The Hugging Face ``datasets`` builder (``mptvc_latents.hf``): rows equal the store's symbols, a
second call reuses the Arrow cache without tokenizing or generating, a changed file list or
checkpoint builds a new cache, an existing store exports its levels, and the torch format keeps uint8.

Sources are two 16-frame 40x56 crops of the sample; the codec is the tiny one of ``tests/_tiny.py``.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["HF_DATASETS_OFFLINE"] = "1"  # nothing here may reach the network
pytest.importorskip("datasets", reason="the Hugging Face builder needs the 'hf' extra: pip install -e '.[hf]'")

from mptvc_latents import store as store_module  # noqa: E402
from mptvc_latents.hf import builder as hf_builder  # noqa: E402
from mptvc_latents.hf import load_token_dataset  # noqa: E402
from mptvc_latents.store import TokenStore, tokenize  # noqa: E402
from mptvc_latents.video import read_video, write_video  # noqa: E402
from tests._tiny import SAMPLE, tiny_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="module")
def videos(work) -> Path:
    folder = work / "videos"
    folder.mkdir()
    sample = read_video(SAMPLE, max_frames=16, start=14)
    for i in range(2):
        write_video(
            folder / f"clip{i}.mp4", sample.frames[:, 30 + 8 * i : 70 + 8 * i, 60 + 20 * i : 116 + 20 * i], sample.fps
        )
    return folder


@pytest.fixture(scope="module")
def store(model, videos, work) -> Path:
    tokenize([videos], work / "ref.zarr", model, progress=False)
    return work / "ref.zarr"


def _cache_dir(ds) -> Path:
    return Path(ds.cache_files[0]["filename"]).parent


def _assert_rows_match_store(ds, store_path: Path, levels: int) -> None:
    ref = TokenStore.open(store_path)
    assert sorted(ds["key"]) == ref.clips()
    for row in ds.with_format("numpy"):
        meta = ref.clip_attrs(row["key"])
        assert (row["frames"], row["height"], row["width"], row["fps"]) == (16, 40, 56, pytest.approx(meta["fps"]))
        tokens = ref.read_tokens(row["key"], levels - 1)
        for k in range(levels):
            np.testing.assert_array_equal(row[f"level_{k}"].reshape(row[f"level_{k}_shape"]), tokens.symbols[k])
        assert f"level_{levels}" not in row


def test_videos_build_then_cache_hit(videos, ckpt, store, work, monkeypatch):
    cache = work / "cache_hit"
    ds = load_token_dataset(videos, ckpt=ckpt, cache_dir=cache)
    assert ds.num_rows == 2
    assert ds.features["level_0"].feature.dtype == "uint8"
    _assert_rows_match_store(ds, store, levels=3)
    assert Path(ds[0]["source"]).parent == videos.resolve()

    def boom(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(store_module, "tokenize", boom)  # the builder imports it when it tokenizes
    monkeypatch.setattr(TokenStore, "read_tokens", boom)
    monkeypatch.setattr(hf_builder.MptvcTokens, "_generate_examples", boom)
    again = load_token_dataset(videos, ckpt=ckpt, cache_dir=cache)
    assert again.cache_files == ds.cache_files
    assert again["key"] == ds["key"]


def test_torch_format_keeps_uint8(videos, ckpt, work):
    ds = load_token_dataset(videos, ckpt=ckpt, cache_dir=work / "cache_torch", k_max=1)
    torch_ds = ds.with_format("torch")
    row = torch_ds[0]
    assert row["level_0"].dtype == torch.uint8
    assert row["level_1"].reshape(tuple(row["level_1_shape"])).shape[-1] == 3  # tiny level 1: 3 channels
    assert torch_ds[0:2]["level_1"][0].dtype == torch.uint8  # a batch of unequal clips: a list
    assert next(iter(torch_ds))["level_0"].dtype == torch.uint8
    assert torch_ds[0]["fps"].dtype == torch.float32  # other columns as in `datasets`
    assert "level_2" not in row


def test_changed_files_or_checkpoint_give_new_cache(videos, ckpt, work):
    cache = work / "cache_change"
    base = _cache_dir(load_token_dataset(videos, ckpt=ckpt, cache_dir=cache))

    grown = work / "grown"
    shutil.copytree(videos, grown)
    first = _cache_dir(load_token_dataset(grown, ckpt=ckpt, cache_dir=cache))
    shutil.copy(videos / "clip0.mp4", grown / "clip2.mp4")
    more = load_token_dataset(grown, ckpt=ckpt, cache_dir=cache)
    assert more.num_rows == 3 and _cache_dir(more) not in (base, first)
    st = (grown / "clip2.mp4").stat()
    os.utime(grown / "clip2.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = _cache_dir(load_token_dataset(grown, ckpt=ckpt, cache_dir=cache))
    assert touched not in (base, first, _cache_dir(more))

    tiny_model(seed=1).save_pretrained(work / "ckpt_other")
    other = load_token_dataset(videos, ckpt=work / "ckpt_other", cache_dir=cache)
    assert _cache_dir(other) != base
    assert not np.array_equal(other.with_format("numpy")[0]["level_2"], load_token_dataset(
        videos, ckpt=ckpt, cache_dir=cache).with_format("numpy")[0]["level_2"])  # fmt: skip


def test_existing_store(store, work):
    ds = load_token_dataset(store=store, k_max=0, cache_dir=work / "cache_store")
    _assert_rows_match_store(ds, store, levels=1)
    assert load_token_dataset(store=store, k_max=0, cache_dir=work / "cache_store").cache_files == ds.cache_files
    assert _cache_dir(load_token_dataset(store=store, cache_dir=work / "cache_store")) != _cache_dir(ds)


def test_bad_arguments(videos, ckpt, store, work):
    with pytest.raises(ValueError, match="either"):
        load_token_dataset(videos, store=store, cache_dir=work / "bad")
    with pytest.raises(ValueError, match="k_max=5 is out of range"):
        load_token_dataset(store=store, k_max=5, cache_dir=work / "bad")
    with pytest.raises(ValueError, match="no such file"):
        load_token_dataset(work / "nothing", ckpt=ckpt, cache_dir=work / "bad")


def test_windows_of_long_clips_are_rows_read_a_window_at_a_time(store, work):
    """``window``: a row per window of token frames (here 2 of each clip's 4), with ``t0``; a new cache."""
    whole = load_token_dataset(store=store, cache_dir=work / "windows")
    ds = load_token_dataset(store=store, window=2, cache_dir=work / "windows").with_format("numpy")
    assert _cache_dir(ds) != _cache_dir(whole) and "t0" not in whole.column_names
    ref = TokenStore.open(store)
    assert sorted((row["key"], int(row["t0"])) for row in ds) == [(key, t0) for key in ref.clips() for t0 in (0, 2)]
    for row in ds:
        tokens = ref.read_tokens(row["key"])
        for k in range(3):
            window = row[f"level_{k}"].reshape(row[f"level_{k}_shape"])
            np.testing.assert_array_equal(window, tokens.symbols[k][row["t0"] : row["t0"] + 2])
    with pytest.raises(ValueError, match="window must be a number of token frames"):
        load_token_dataset(store=store, window=0, cache_dir=work / "windows")
