"""Token stores (``docs/token_store.md``): the layout and its attributes, store -> detokenize equal to
``decode(encode(x))``, resume, bad files, a ``kill -9`` mid-run then resume equal to an uninterrupted
run, one checkpoint per store, stores of layout v1 read and resumed in v1, reading without torch, the
``mptvc tokenize/detokenize`` commands with two workers, and ``TokenDataset`` with DataLoader workers.

Sources are five 16-frame crops of the sample (its hard cut lands at frame 8) of 40x56 pixels,
so they pad in h and w; the codec is the tiny one of ``tests/_tiny.py``.
"""

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from mptvc_latents import cli
from mptvc_latents.store import (
    FORMAT,
    StoreCheckpointError,
    TokenDataset,
    TokenStore,
    clip_key,
    detokenize,
    file_sha256,
    tokenize,
    weights_digest,
)
from mptvc_latents.video import read_video, write_video
from tests._tiny import SAMPLE, tiny_model

CLIPS = 5
ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def sources(work) -> Path:
    folder = work / "videos"
    (folder / "sub").mkdir(parents=True)
    sample = read_video(SAMPLE, max_frames=16, start=14)
    for i in range(CLIPS):
        name = f"clip {i}.mp4" if i < 3 else f"sub/clip{i}.mp4"
        write_video(folder / name, sample.frames[:, 30 + 8 * i : 70 + 8 * i, 60 + 20 * i : 116 + 20 * i], sample.fps)
    return folder


@pytest.fixture(scope="module")
def store(model, sources, work) -> Path:
    """The reference: every source tokenized in one uninterrupted run, in this process."""
    summary = tokenize([sources], work / "ref.zarr", model, progress=False)
    assert len(summary.written) == CLIPS and not summary.failed and not summary.skipped
    return work / "ref.zarr"


def _videos(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.mp4"))


def _key(path: Path, folder: Path) -> str:
    return clip_key(path, folder)


def _snapshot(path: Path) -> dict:
    """Everything a store holds, read from disk: root attributes, and per clip its attributes and arrays."""
    root = zarr.open_group(str(path), mode="r", use_consolidated=False)
    out = {"attrs": dict(root.attrs), "clips": {}}
    for key, group in root["clips"].groups():
        arrays = {name: (a[...], a.chunks, a.shards, a.metadata.to_dict()) for name, a in group.arrays()}
        out["clips"][key] = (dict(group.attrs), arrays)
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    x, y = _snapshot(a), _snapshot(b)
    assert x["attrs"] == y["attrs"]
    assert sorted(x["clips"]) == sorted(y["clips"])
    for key, (attrs, arrays) in x["clips"].items():
        other_attrs, other_arrays = y["clips"][key]
        assert attrs == other_attrs, key
        assert sorted(arrays) == sorted(other_arrays)
        for name, (data, chunks, shards, meta) in arrays.items():
            np.testing.assert_array_equal(data, other_arrays[name][0], err_msg=f"{key}/{name}")
            assert (chunks, shards, meta) == other_arrays[name][1:]


# --------------------------------------------------------------------------- layout


def test_store_attributes_name_format_and_checkpoint(store, model):
    root = json.loads((store / "zarr.json").read_text())
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    attrs = root["attributes"]
    assert attrs["format"] == FORMAT == "mptvc-token-store" and attrs["version"] == 3
    assert attrs["checkpoint"] == {
        "digest": weights_digest(model),
        "tables_digest": model.tables_digest(),
        "config": json.loads(json.dumps(model.config.to_dict())),
    }
    consolidated = root["consolidated_metadata"]["metadata"]
    complete = {k for k, v in consolidated.items() if k.count("/") == 1 and v["attributes"].get("complete")}
    assert len(complete) == CLIPS


def test_clip_attributes_and_arrays_follow_the_layout(store, sources, model):
    path = _videos(sources)[0]
    key = _key(path, sources)
    assert key.startswith("clip_0-") and len(key) == len("clip_0-") + 10
    tokens = model.encode(read_video(path).frames, read_video(path).fps)
    group = zarr.open_group(str(store), mode="r")[f"clips/{key}"]
    attrs = dict(group.attrs)
    assert attrs == {
        "source": str(path.resolve()),
        "sha256": file_sha256(path),
        "fps": tokens.info.fps,
        "frames": 16,
        "height": 40,
        "width": 56,
        "padding": {"t": 0, "h": 8, "w": 8},
        "scene_ids": [[0, 8], [1, 8]],  # (id, length): the sample's hard cut at frame 8
        "levels": model.num_levels,
        "complete": True,
    }
    chunk_t = model.config.chunk_frames // model.config.patch_t
    for k, symbols in enumerate(tokens.symbols):
        array = group[f"level_{k}"]
        assert array.dtype == np.uint8 and array.shape == symbols.shape
        assert array.chunks == (chunk_t, *symbols.shape[1:]) and array.shards == symbols.shape
        assert array.metadata.dimension_names == ("t", "h", "w", "c")
        inner = array.metadata.to_dict()["codecs"][0]["configuration"]["codecs"]
        assert [c["name"] for c in inner] == ["bytes", "zstd"]
        np.testing.assert_array_equal(array[...], symbols)


def test_clip_keys_are_stable_safe_and_distinct(tmp_path):
    assert clip_key(tmp_path / "a" / "b c.mp4", tmp_path).startswith("a_b_c-")
    assert clip_key(tmp_path / "x.mp4") == clip_key(str(tmp_path / "x.mp4"))
    assert clip_key(tmp_path / "1" / "x.mp4") != clip_key(tmp_path / "2" / "x.mp4")
    assert clip_key(tmp_path / "...mp4").startswith("clip-")


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("k_max", [0, None])
def test_detokenize_equals_decode_of_encode(store, sources, model, work, k_max):
    out = work / f"npy{k_max}"
    written = detokenize(store, out, model, k_max=k_max, suffix=".npy", progress=False)
    assert len(written) == CLIPS
    for path in _videos(sources):
        clip = read_video(path)
        expected = model.decode(model.encode(clip.frames, clip.fps), k_max)
        np.testing.assert_array_equal(np.load(out / f"{_key(path, sources)}.npy"), expected)


def test_read_tokens_gives_the_level_prefix(store, model):
    reader = TokenStore.open(store, model)
    key = reader.clips()[0]
    full, prefix = reader.read_tokens(key), reader.read_tokens(key, k_max=1)
    assert len(full.symbols) == 3 and len(prefix.symbols) == 2
    np.testing.assert_array_equal(full.info.scene_ids, prefix.info.scene_ids)
    with pytest.raises(ValueError, match="k_max=3 is out of range"):
        reader.read_tokens(key, k_max=3)
    with pytest.raises(KeyError, match="no complete clip"):
        reader.read_tokens("nope")


# --------------------------------------------------------------------------- resume and failures


def test_resume_skips_finished_clips(store, sources, model):
    stamps = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file() and "level_" in str(p)}
    summary = tokenize([sources], store, model, progress=False)
    assert summary.written == [] and len(summary.skipped) == CLIPS and summary.failed == []
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}


def test_a_changed_source_or_more_levels_are_rewritten(sources, model, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(_videos(sources)[0].read_bytes())
    key = clip_key(video)
    assert tokenize([video], tmp_path / "s.zarr", model, levels=1, progress=False).written == [key]
    assert tokenize([video], tmp_path / "s.zarr", model, levels=1, progress=False).skipped == [key]
    assert tokenize([video], tmp_path / "s.zarr", model, progress=False).written == [key]  # 1 level -> 3
    video.write_bytes(_videos(sources)[1].read_bytes())
    assert tokenize([video], tmp_path / "s.zarr", model, progress=False).written == [key]
    reader = TokenStore.open(tmp_path / "s.zarr")
    assert reader.clip_attrs(key)["sha256"] == file_sha256(video) and reader.clip_attrs(key)["levels"] == 3


def test_bad_files_are_reported_and_skipped(sources, model, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    good = _videos(sources)[:2]
    args = [bad, *good, tmp_path / "missing.mp4", str(tmp_path / "*.mkv")]
    summary = tokenize(args, tmp_path / "s.zarr", model, progress=False)
    assert sorted(summary.written) == sorted(clip_key(p) for p in good)
    failed = dict(summary.failed)
    assert set(failed) == {str(bad.resolve()), str(tmp_path / "missing.mp4"), str(tmp_path / "*.mkv")}
    assert "could not be opened as a video" in failed[str(bad.resolve())]
    assert summary.clips_per_s > 0 and summary.frames_per_s > 0 and "2 clips written (32 frames)" in summary.format()
    assert TokenStore.open(tmp_path / "s.zarr", model).clips() == sorted(clip_key(p) for p in good)


def test_an_incomplete_clip_is_invisible_and_rewritten(store, sources, model, tmp_path):
    copy = tmp_path / "s.zarr"
    subprocess.run(["cp", "-r", str(store), str(copy)], check=True)
    key = sorted(TokenStore.open(copy).clips())[1]
    meta = copy / "clips" / key / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["complete"] = False  # as a crash between the arrays and the marker leaves it
    meta.write_text(json.dumps(doc))
    (copy / "clips" / key / "level_2" / "zarr.json").unlink()
    assert key not in TokenStore.open(copy, writable=True).clips()
    summary = tokenize([sources], copy, model, progress=False)
    assert summary.written == [key] and len(summary.skipped) == CLIPS - 1
    _assert_same_store(copy, store)


@pytest.mark.parametrize("stage", ["*", "level_1/zarr.json"], ids=["creating", "mid-arrays"])
def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(store, sources, model, ckpt, tmp_path, stage):
    target = tmp_path / "killed.zarr"
    script = (
        "import sys, torch; torch.set_num_threads(1); from mptvc_latents import cli; "
        f"sys.exit(cli.main(['tokenize', {str(sources)!r}, '--out', {str(target)!r}, '--ckpt', {str(ckpt)!r}]))"
    )
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, stderr=subprocess.PIPE)

    def complete() -> list[str]:
        done = []
        for meta in target.glob("clips/*/zarr.json"):
            try:
                done += [meta.parent.name] if json.loads(meta.read_text())["attributes"]["complete"] else []
            except (ValueError, KeyError, OSError):
                pass
        return done

    def started() -> set[str]:
        return {p.relative_to(target / "clips").parts[0] for p in target.glob(f"clips/*/{stage}")}

    # Kill once the first clip is complete and, best effort, while the next one is at `stage`.
    deadline = time.monotonic() + 50
    while not complete() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    first, deadline = set(complete()), time.monotonic() + 2
    while started() <= first and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = complete()
    assert 1 <= len(done) < CLIPS, f"the kill came too late or too early: {len(done)} clips complete"
    assert sorted(TokenStore.open(target, writable=True).clips()) == sorted(done)

    summary = tokenize([sources], target, model, progress=False)
    assert sorted(summary.skipped) == sorted(done) and len(summary.written) == CLIPS - len(done)
    _assert_same_store(target, store)
    assert not list(target.rglob("*.partial"))


def test_a_store_never_mixes_checkpoints(store, sources, model, tmp_path):
    other = tiny_model(seed=1)
    before = _snapshot(store)
    for call in (
        lambda: TokenStore.open(store, other),
        lambda: tokenize([sources], store, other, progress=False),
        lambda: detokenize(store, tmp_path / "out", other, progress=False),
    ):
        with pytest.raises(StoreCheckpointError, match="written with another checkpoint"):
            call()
    after = _snapshot(store)
    assert before["attrs"] == after["attrs"] and sorted(before["clips"]) == sorted(after["clips"])


def test_opening_what_is_not_a_store_says_so(tmp_path, model):
    with pytest.raises(ValueError, match="is not a token store"):
        TokenStore.open(tmp_path)
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w").attrs["format"] = "other"
    with pytest.raises(ValueError, match="not an MPT-VC token store"):
        TokenStore.open(tmp_path / "g.zarr")
    with pytest.raises(ValueError, match="already exists"):
        TokenStore.create(tmp_path / "g.zarr", model)
    with pytest.raises(ValueError, match="levels must lie in 1..3"):
        tokenize([tmp_path], tmp_path / "s.zarr", model, levels=4)
    with pytest.raises(ValueError, match="No video was found: .*missing.mp4.*no such file or folder"):
        tokenize([tmp_path / "missing.mp4"], tmp_path / "s.zarr", model)
    assert not (tmp_path / "s.zarr").exists()


# --------------------------------------------------------------------------- layout v1 and torch


def _as_v1(path: Path) -> None:
    """Turn a v3 store (of clips without masks) into the store layout v1 wrote: version 1, scene runs
    as ``[[first_frame, id], ...]``."""
    root = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    root.attrs["version"] = 1
    for _, group in root["clips"].groups():
        starts, first = [], 0
        for scene, length in group.attrs["scene_ids"]:
            starts.append([first, scene])
            first += length
        group.attrs["scene_ids"] = starts
    zarr.consolidate_metadata(root.store)


def test_a_v1_store_reads_the_same_tokens_and_scene_ids(store, tmp_path):
    old = tmp_path / "v1.zarr"
    shutil.copytree(store, old)
    _as_v1(old)
    reader, reference = TokenStore.open(old), TokenStore.open(store)
    assert reader.version == 1 and reference.version == 3
    key = reader.clips()[0]
    assert reader.clip_attrs(key)["scene_ids"] == [[0, 0], [8, 1]]  # what v1 wrote for the sample's cut
    assert reader.read_tokens(key).info.scene_ids.tolist() == [0] * 8 + [1] * 8
    for key in reference.clips():
        ours, theirs = reader.read_tokens(key), reference.read_tokens(key)
        np.testing.assert_array_equal(ours.info.scene_ids, theirs.info.scene_ids)
        assert ours.info.scene_ids.dtype == np.int32 and ours.info.padding == theirs.info.padding
        for a, b in zip(ours.symbols, theirs.symbols, strict=True):
            np.testing.assert_array_equal(a, b)


def test_resuming_into_a_v1_store_writes_v1_clips(store, sources, model, tmp_path):
    """A store keeps one layout: the clips a resumed ``tokenize`` adds to a v1 store are written as v1
    wrote them, so the store stays readable by the mptvc that started it."""
    expected, resumed = tmp_path / "expected.zarr", tmp_path / "resumed.zarr"
    shutil.copytree(store, expected)
    _as_v1(expected)
    shutil.copytree(expected, resumed)
    key = TokenStore.open(resumed).clips()[2]
    shutil.rmtree(resumed / "clips" / key)
    summary = tokenize([sources], resumed, model, progress=False)
    assert summary.written == [key] and len(summary.skipped) == CLIPS - 1
    _assert_same_store(resumed, expected)
    assert TokenStore.open(resumed, model).version == 1


def test_bad_scene_runs_and_unknown_layouts_are_clear_errors(store, tmp_path):
    copy = tmp_path / "s.zarr"
    shutil.copytree(store, copy)
    root = zarr.open_group(str(copy), mode="r+", use_consolidated=False)
    key = sorted(k for k, _ in root["clips"].groups())[0]
    root[f"clips/{key}"].attrs["scene_ids"] = [[0, 0], [8, 1]]  # v1 runs in a v3 store: a run of 0 frames
    zarr.consolidate_metadata(root.store)
    with pytest.raises(ValueError, match=f"Clip '{key}' .* do not describe its video .*positive lengths"):
        TokenStore.open(copy).read_tokens(key)
    root.attrs["version"] = 4
    zarr.consolidate_metadata(root.store)
    with pytest.raises(
        ValueError, match="is token store layout v4; this version of mptvc reads layouts v1, v2, v3 only"
    ):
        TokenStore.open(copy)


def test_a_store_reads_without_torch(store):
    """The layout module and the types import no torch and no huggingface_hub, and reading a clip
    pulls in neither: tools that only look at tokens stay light."""
    code = (
        "import sys\n"
        "from mptvc_latents.formats.token_store import TokenStore\n"
        f"store = TokenStore.open({str(store)!r})\n"
        "tokens = store.read_tokens(store.clips()[0])\n"
        "assert tokens.info.scene_ids.tolist() == [0] * 8 + [1] * 8, tokens.info.scene_ids\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'huggingface_hub'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


# --------------------------------------------------------------------------- the command line


def test_cli_tokenize_two_workers_and_detokenize(store, sources, ckpt, model, tmp_path, capsys):
    out = tmp_path / "cli.zarr"
    assert cli.main(["tokenize", str(sources), "--out", str(out), "--workers", "2", "--ckpt", str(ckpt)]) == 0
    _assert_same_store(out, store)

    assert cli.main(["detokenize", str(out), "--out", str(tmp_path / "mp4"), "--k-max", "0", "--ckpt", str(ckpt)]) == 0
    videos = sorted((tmp_path / "mp4").glob("*.mp4"))
    assert [v.stem for v in videos] == TokenStore.open(out).clips()
    path = _videos(sources)[0]
    clip = read_video(path)
    expected = model.decode(model.encode(clip.frames, clip.fps), 0).astype(float)
    written = read_video(tmp_path / "mp4" / f"{_key(path, sources)}.mp4").frames.astype(float)
    assert written.shape == expected.shape and np.abs(written - expected).mean() < 3  # H.264 at crf 12

    capsys.readouterr()
    assert cli.main(["detokenize", str(out), "--out", str(tmp_path / "x"), "--clips", "nope", "--ckpt", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mptvc: error: ") and "no complete clip named 'nope'" in err and err.count("\n") == 1


def test_cli_tokenize_levels_prefix(sources, ckpt, tmp_path):
    out = tmp_path / "l1.zarr"
    assert (
        cli.main(["tokenize", str(_videos(sources)[0]), "--out", str(out), "--levels", "1", "--ckpt", str(ckpt)]) == 0
    )
    reader = TokenStore.open(out)
    (key,) = reader.clips()
    assert reader.clip_attrs(key)["levels"] == 1
    assert sorted(n for n, _ in zarr.open_group(str(out), mode="r")[f"clips/{key}"].arrays()) == [
        "level_0",
        "timestamps",
    ]


# --------------------------------------------------------------------------- long clips, a chunk at a time


@pytest.fixture(scope="module")
def long_clip(work) -> Path:
    """All 64 frames of the sample at 40x56: 8 chunks of the tiny codec, the cut at frame 22."""
    path = work / "long" / "long.mp4"
    path.parent.mkdir()
    sample = read_video(SAMPLE)
    write_video(path, sample.frames[:, 40:80, 100:156], sample.fps)
    return path


def test_a_clip_is_written_a_chunk_at_a_time_with_its_timestamps(long_clip, model, tmp_path):
    summary = tokenize([long_clip], tmp_path / "s.zarr", model, progress=False)
    (key,) = summary.written
    store = TokenStore.open(tmp_path / "s.zarr")
    tokens = store.read_tokens(key)
    clip = read_video(long_clip)
    expected = model.encode(clip.frames, clip.fps)
    assert all(np.array_equal(a, b) for a, b in zip(tokens.symbols, expected.symbols, strict=True))
    assert tokens.info.scene_ids.tolist() == expected.info.scene_ids.tolist() and tokens.info.scene_ids[-1] == 1
    np.testing.assert_array_equal(store.read_timestamps(key), clip.timestamps)
    assert store.level_array(key, 2).shards == tokens.symbols[2].shape  # the whole clip in one shard, as before
    lazy = store.read_tokens(key, 1, lazy=True)
    assert isinstance(lazy.symbols[0], zarr.Array) and np.array_equal(lazy.symbols[1][2:4], tokens.symbols[1][2:4])


def test_an_interrupted_clip_resumes_after_its_last_written_chunk(long_clip, model, tmp_path, monkeypatch):
    reference = tmp_path / "ref.zarr"
    tokenize([long_clip], reference, model, progress=False)
    from mptvc_latents.formats.token_store import ClipWriter

    append = ClipWriter.append

    def crash_after_three(writer, symbols):
        if writer.chunks_written == 3:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) between chunks 3 and 4
        append(writer, symbols)

    target = tmp_path / "s.zarr"
    monkeypatch.setattr(ClipWriter, "append", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        tokenize([long_clip], target, model, progress=False)
    monkeypatch.setattr(ClipWriter, "append", append)
    key = clip_key(long_clip)
    assert TokenStore.open(target).clips() == []  # incomplete: invisible
    level = zarr.open_group(str(target / "clips" / key), mode="r+")["level_2"]
    level.resize((level.shape[0] + 1, *level.shape[1:]))  # a crash inside the next chunk's write
    coded = []
    analyze = model._analyze
    monkeypatch.setattr(model, "_analyze", lambda *args: coded.append(1) or analyze(*args))
    summary = tokenize([long_clip], target, model, progress=False)
    assert summary.written == [key] and len(coded) == 5  # chunks 3..7 only: 0..2 were written
    _assert_same_store(target, reference)


def test_a_part_written_clip_of_a_changed_source_is_written_anew(long_clip, model, tmp_path):
    store = TokenStore.create(tmp_path / "s.zarr", model)
    writer = store.begin_clip(clip_key(long_clip), str(long_clip), "0" * 64, 3, resume=True)
    writer.append([np.zeros((2, 5, 7, c), np.uint8) for c in (2, 3, 4)])
    assert store.sweep(resumable={clip_key(long_clip)}) == []  # kept: it might resume
    again = store.begin_clip(clip_key(long_clip), str(long_clip), file_sha256(long_clip), 3, resume=True)
    assert again.chunks_written == 0  # another sha256: started over
    assert store.sweep() == [clip_key(long_clip)]


def test_detokenize_writes_each_clip_a_chunk_at_a_time(long_clip, model, tmp_path, monkeypatch):
    tokenize([long_clip], tmp_path / "s.zarr", model, progress=False)
    writes = []
    from mptvc_latents.video import FrameWriter

    write = FrameWriter.write
    monkeypatch.setattr(FrameWriter, "write", lambda self, frames: writes.append(len(frames)) or write(self, frames))
    (path,) = detokenize(tmp_path / "s.zarr", tmp_path / "out", model, k_max=1, suffix=".npy", progress=False)
    assert writes == [8] * 8
    clip = read_video(long_clip)
    np.testing.assert_array_equal(np.load(path), model.decode(model.encode(clip.frames, clip.fps), k_max=1))


# --------------------------------------------------------------------------- TokenDataset


def test_dataset_windows_are_slices_of_the_clips(store):
    reader = TokenStore.open(store)
    data = TokenDataset(store, k_max=1, window=2, stride=1)
    lengths = {key: reader.level_array(key, 0).shape[0] for key in reader.clips()}
    assert len(data) == sum(t - 1 for t in lengths.values())
    for i in (0, len(data) - 1):
        item = data[i]
        assert sorted(item) == ["key", "level_0", "level_1", "mask", "t0"]
        assert item["mask"].shape == (2, 2) and bool(item["mask"].all())  # every token sent: no rate control
        tokens = reader.read_tokens(item["key"], k_max=1)
        for k in range(2):
            assert item[f"level_{k}"].dtype == torch.uint8
            np.testing.assert_array_equal(item[f"level_{k}"].numpy(), tokens.symbols[k][item["t0"] : item["t0"] + 2])
    whole = TokenDataset(store)
    assert len(whole) == CLIPS and sorted(whole[0]) == ["key", "level_0", "level_1", "level_2", "mask", "t0"]
    assert whole[0]["mask"].shape == (whole[0]["level_0"].shape[0], 3) and bool(whole[0]["mask"].all())
    with pytest.raises(ValueError, match="k_max=3 is out of range"):
        TokenDataset(store, k_max=3)


def test_dataset_with_two_dataloader_workers(store):
    data = TokenDataset(store, k_max=0, window=2)
    data[0]  # opens the store in this process: workers must open their own
    assert pickle.loads(pickle.dumps(data))._store is None
    loader = torch.utils.data.DataLoader(data, batch_size=2, num_workers=2)
    seen = []
    for batch in loader:
        assert batch["level_0"].dtype == torch.uint8 and batch["level_0"].shape[1] == 2
        for key, t0, window in zip(batch["key"], batch["t0"].tolist(), batch["level_0"], strict=True):
            np.testing.assert_array_equal(window.numpy(), data[data.items.index((key, t0))]["level_0"].numpy())
            seen.append((key, t0))
    assert seen == data.items
