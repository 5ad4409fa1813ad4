"""Rate control (issue 17): targets, plans, the files they make (container v4) and stores.

The shipped checkpoint (with its context tables) codes 128 frames of 32x64 of the sample clip: four
chunks, chunk 0 intra, so the context a dropped level leaves to the next chunk is exercised. One
table is measured per module and planned many ways; each test decodes what it checks.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from mptvc_latents import cli
from mptvc_latents import ratecontrol as rc
from mptvc_latents.codec import MPTVC
from mptvc_latents.formats.container import (
    MalformedHeaderError,
    inspect_mptvc,
    parse_header,
    read_mptvc,
    truncate_mptvc,
    write_mptvc,
)
from mptvc_latents.types import ChunkRate, RatePlan
from mptvc_latents.video import read_video
from tests._tiny import SAMPLE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shipped() -> MPTVC:
    return MPTVC.from_pretrained()


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    frames = read_video(SAMPLE).frames
    return np.ascontiguousarray(np.concatenate([frames, frames[::-1]])[:, 40:72, 100:164])  # (128, 32, 64, 3)


@pytest.fixture(scope="module")
def table(shipped, clip):
    measures, info = rc.measure(shipped, lambda: [clip], 25.0)
    pixels = info.frames * info.height * info.width
    return measures, info, rc.header_bits(shipped, info, len(measures)), pixels


def _sse(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a.astype(np.int64) - b.astype(np.int64)) ** 2).sum())


def _plan(table, target: rc.RateTarget) -> rc.Solution:
    measures, info, header, pixels = table
    return rc.plan_chunks(measures, 3, header, pixels, target)


def _cost(table, levels) -> tuple[int, float]:
    measures, _, header, _ = table
    bits = header + sum(
        m.bits(n, levels[c - 1] if c else 0) for c, (m, n) in enumerate(zip(measures, levels, strict=True))
    )
    return bits, sum(m.sse[n - 1] for m, n in zip(measures, levels, strict=True))


def _reach(table) -> tuple[float, float]:
    with pytest.raises(rc.UnreachableTargetError) as e:
        _plan(table, rc.RateTarget(bpp=1e-6))
    return e.value.reachable


# --------------------------------------------------------------------------- targets and plans


def test_rate_target_checks_its_fields():
    for kwargs, words in (
        ({}, "exactly one"),
        ({"bpp": 0.1, "psnr": 30.0}, "exactly one"),
        ({"bpp": -0.1}, "positive finite"),
        ({"psnr": float("nan")}, "positive finite"),
        ({"bpp": True}, "positive finite"),
        ({"bpp": 0.1, "skip_rounds": -1}, "skip_rounds"),
    ):
        with pytest.raises(ValueError, match=words):
            rc.RateTarget(**kwargs)
    assert rc.RateTarget(psnr=31).kind == "psnr" and rc.RateTarget(bpp=0.05).value == 0.05


def test_the_viterbi_plan_is_the_exact_lagrangian_optimum(table):
    """Chunk c's bits depend on n_{c-1} (the context); the shortest path must still be optimal."""
    measures, _, header, _ = table
    planner = rc._Planner(measures, 3, header)
    plans = list(itertools.product((1, 2, 3), repeat=len(measures)))
    for lam in (1.0, 300.0, 3e3, 3e4, 1e6):
        costs = {p: (lambda b, d: d + lam * b)(*_cost(table, p)) for p in plans}
        assert costs[planner.viterbi(lam)] == pytest.approx(min(costs.values()), rel=1e-12)


def test_a_bpp_target_is_a_budget_met_and_filled(table):
    low, high = _reach(table)
    _, _, _, pixels = table
    for bpp in np.linspace(low, high, 6):
        s = _plan(table, rc.RateTarget(bpp=float(bpp)))
        assert (s.bits, s.sse) == _cost(table, s.levels)
        assert s.bits <= bpp * pixels + 1e-9
        for c in range(len(s.levels)):  # no single chunk could take one more level within the budget
            if s.levels[c] < 3:
                up = s.levels[:c] + (s.levels[c] + 1,) + s.levels[c + 1 :]
                bits, sse = _cost(table, up)
                assert bits > bpp * pixels or sse >= s.sse


def test_a_psnr_target_is_a_floor_met_cheaply(table):
    _, _, _, pixels = table
    hi = _plan(table, rc.RateTarget(bpp=_reach(table)[1]))
    lo_psnr, hi_psnr = rc.psnr_from_sse(_cost(table, (1,) * 4)[1], 3 * pixels), rc.psnr_from_sse(hi.sse, 3 * pixels)
    for psnr in np.linspace(lo_psnr + 0.01, hi_psnr - 0.01, 5):
        s = _plan(table, rc.RateTarget(psnr=float(psnr)))
        assert rc.psnr_from_sse(s.sse, 3 * pixels) >= psnr
        for c in range(len(s.levels)):  # no single chunk could drop a level and keep the floor
            if s.levels[c] > 1:
                down = s.levels[:c] + (s.levels[c] - 1,) + s.levels[c + 1 :]
                bits, sse = _cost(table, down)
                assert rc.psnr_from_sse(sse, 3 * pixels) < psnr or bits >= s.bits


def test_more_budget_never_buys_less_quality(table):
    low, high = _reach(table)
    plans = [_plan(table, rc.RateTarget(bpp=float(b))) for b in np.linspace(low, high, 9)]
    assert [p.bits for p in plans] == sorted(p.bits for p in plans)
    assert [p.sse for p in plans] == sorted((p.sse for p in plans), reverse=True)
    assert plans[0].levels != plans[-1].levels
    _, _, _, pixels = table
    floors = [_plan(table, rc.RateTarget(psnr=float(q))) for q in (24.0, 26.0, 28.0, 30.0)]
    assert [p.bits for p in floors] == sorted(p.bits for p in floors)


def test_an_unreachable_target_says_the_range_and_best_effort_gives_the_nearest(table):
    low, high = _reach(table)
    assert 0 < low < high
    with pytest.raises(rc.UnreachableTargetError, match=rf"{low:.4f} to {high:.4f}.*best_effort"):
        _plan(table, rc.RateTarget(bpp=high * 2))
    with pytest.raises(rc.UnreachableTargetError, match=r"PSNR 80.00 dB .* dB to .* dB"):
        _plan(table, rc.RateTarget(psnr=80.0))
    _, _, _, pixels = table
    assert _plan(table, rc.RateTarget(bpp=low / 2, best_effort=True)).bits == pytest.approx(low * pixels)
    assert _plan(table, rc.RateTarget(bpp=high * 2, best_effort=True)).bits == pytest.approx(high * pixels)
    best = _plan(table, rc.RateTarget(psnr=80.0, best_effort=True))
    assert best.sse == min(_cost(table, p)[1] for p in itertools.product((1, 2, 3), repeat=4))


# --------------------------------------------------------------------------- files


def _check_decodes_as_measured(shipped, clip, compressed) -> bytes:
    """Every prefix of the written file (and every --k-max) decodes to the SSE the encoder recorded."""
    data = write_mptvc(compressed, shipped.config.to_dict(), shipped.tables_digest())
    assert data[8] == 4
    read, header, _ = read_mptvc(data, digest=shipped.tables_digest(), config=shipped.config.to_dict())
    assert header.rate == compressed.rate
    for k in range(3):
        frames = shipped.decompress(read, k_max=k)
        assert _sse(frames, clip) == sum(chunk.sse[k] for chunk in header.rate.chunks)
        prefix, _, report = read_mptvc(truncate_mptvc(data, k), warn=False)
        assert report.levels_complete >= k + 1  # more when no chunk sends the levels above k (0 bytes)
        assert np.array_equal(shipped.decompress(prefix, k_max=k), frames)
        assert np.array_equal(shipped.decompress(prefix), shipped.decompress(read, k_max=report.levels_complete - 1))
        streamed = np.concatenate(list(shipped.decompress_stream(read, k_max=k)))
        assert np.array_equal(streamed, frames)
    return data


@pytest.mark.parametrize("levels", [(3, 1, 2, 3), (1, 3, 3, 2), (2, 2, 3, 1)])
def test_a_level_dropped_in_one_chunk_leaves_the_next_chunk_the_context_the_decoder_has(shipped, clip, table, levels):
    measures, info, _, _ = table
    compressed = rc.assemble(shipped, measures, info, levels, rc.RateTarget(bpp=0.1))
    for k in range(3):
        for c, n in enumerate(levels):
            assert (compressed.segments[k][c] == (b"", b"")) == (k >= n)
    _check_decodes_as_measured(shipped, clip, compressed)


def test_skipped_token_frames_decode_as_the_encoder_measured(shipped, clip):
    measures, info = rc.measure(shipped, lambda: [clip], 25.0, lam_skip=3e3)
    skipped = sum(int((~m.sent[k]).sum()) for m in measures for k in range(3))
    assert skipped > 0 and all(m.sent[0].all() and m.sent[k][0] for m in measures for k in range(3))
    compressed = rc.assemble(shipped, measures, info, (3, 3, 2, 3), rc.RateTarget(psnr=30.0))
    assert any(chunk.skipped[k] for chunk in compressed.rate.chunks for k in (1, 2))
    data = _check_decodes_as_measured(shipped, clip, compressed)
    plain, _ = rc.measure(shipped, lambda: [clip], 25.0)
    unskipped = rc.assemble(shipped, plain, info, (3, 3, 2, 3), rc.RateTarget(psnr=30.0))
    assert len(data) < len(write_mptvc(unskipped, shipped.config.to_dict(), shipped.tables_digest()))


def test_compress_with_a_target_meets_it_and_info_reports_it(shipped, clip, table, capsys, tmp_path):
    _, _, _, pixels = table
    target = rc.RateTarget(psnr=28.0)
    compressed = shipped.compress(clip, 25.0, target=target)
    data = _check_decodes_as_measured(shipped, clip, compressed)
    achieved = rc.psnr_from_sse(_sse(shipped.decompress(read_mptvc(data)[0]), clip), 3 * pixels)
    assert achieved >= 28.0
    info = inspect_mptvc(data).to_dict()["rate_control"]
    assert info["target"] == {"psnr": 28.0} and info["bpp"] == 8 * len(data) / pixels
    assert info["predicted_psnr"] == pytest.approx(achieved, abs=1e-9)
    assert info["levels_per_chunk"] == [c.levels for c in compressed.rate.chunks]
    path = tmp_path / "rc.mptvc"
    path.write_bytes(data)
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mptvc v4" in out and f"achieved {8 * len(data) / pixels:.4f} bpp" in out and f"{achieved:.2f} dB" in out
    assert cli.main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rate_control"]["target"] == {"psnr": 28.0}


def test_files_without_a_target_keep_their_version_and_bytes(shipped, clip, model):
    plain = shipped.compress(clip[:32], 25.0)
    assert plain.rate is None
    data = write_mptvc(plain, shipped.config.to_dict(), shipped.tables_digest())
    assert data[8] == 3 and parse_header(data).rate is None
    tiny = model.compress(clip[:16, :32, :32], 25.0)
    assert write_mptvc(tiny, model.config.to_dict(), model.tables_digest())[8] == 2
    from pathlib import Path

    old = (Path(__file__).parent / "fixtures" / "container" / "tiny_v2.mptvc").read_bytes()
    stream, header, _ = read_mptvc(old)
    assert header.version == 2 and stream.rate is None
    assert write_mptvc(stream, header.config, header.digest) == old


def test_rate_control_without_a_context_model_drops_levels_only(model, clip):
    video = clip[:32, :32, :32]
    compressed = model.compress(video, 25.0, target=rc.RateTarget(bpp=2.0, best_effort=True))
    assert compressed.intra_period is None and not any(any(c.skipped) for c in compressed.rate.chunks)
    data = write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
    header = parse_header(data)
    assert header.version == 4 and "context" not in header.config
    assert _sse(model.decompress(read_mptvc(data)[0]), video) == sum(c.sse[-1] for c in header.rate.chunks)


def test_a_malformed_rate_plan_is_refused(shipped, clip, table):
    measures, info, _, _ = table
    good = rc.assemble(shipped, measures, info, (3, 3, 3, 3), rc.RateTarget(bpp=0.1))
    config, digest = shipped.config.to_dict(), shipped.tables_digest()
    bad_chunks = (
        ChunkRate(0, (0, 0, 0), (1.0, 1.0, 1.0)),  # no level
        ChunkRate(3, (0, 1, 0), (3.0, 2.0, 1.0)),  # frame 0 left out
        ChunkRate(3, (2, 0, 0), (3.0, 2.0, 1.0)),  # a level-0 frame left out
        ChunkRate(2, (0, 0, 2), (3.0, 2.0, 2.0)),  # a frame of a level not sent
        ChunkRate(3, (0, 1 << 8, 0), (3.0, 2.0, 1.0)),  # past the chunk's 8 token frames
        ChunkRate(2, (0, 0, 0), (3.0, 2.0, 1.0)),  # SSE changes past the levels sent
        ChunkRate(3, (0, 0, 0), (3.0, float("nan"), 1.0)),
    )
    for chunk in bad_chunks:
        plan = RatePlan((chunk,) + good.rate.chunks[1:], "bpp", 0.1)
        good.rate = plan
        with pytest.raises(ValueError, match="rate plan|Chunk 0"):
            write_mptvc(good, config, digest)
    # A crafted header (valid CRC) whose chunk sends 1 level but has bytes above it.
    good.rate = RatePlan((ChunkRate(1, (0, 0, 0), (3.0, 3.0, 3.0)),) + good.rate.chunks[1:], "bpp", 0.1)
    with pytest.raises(ValueError, match="sends 1 levels but level 1 has bytes"):
        write_mptvc(good, config, digest)
    from mptvc_latents.formats import framing
    from mptvc_latents.formats.container import mptvc_header

    payloads = [bytes(s) for level in good.segments for pair in level for s in pair]
    header = mptvc_header(info, config, digest, [4, 4, 4], framing.payload_table(payloads), good.rate)
    with pytest.raises(MalformedHeaderError, match="chunk 0 sends 1 level"):
        parse_header(header + b"".join(payloads))


# --------------------------------------------------------------------------- command line and stores


@pytest.fixture(scope="module")
def video_file(clip, tmp_path_factory):
    from mptvc_latents.video import write_video

    path = tmp_path_factory.mktemp("rc") / "clip.mp4"
    write_video(path, clip, 25.0)
    return path


@pytest.fixture(scope="module")
def targeted(shipped, video_file):
    """The file's frames coded for 27 dB: what the stores below must hold."""
    return shipped.compress(read_video(video_file).frames, 25.0, target=rc.RateTarget(psnr=27.0))


def test_the_command_line_encodes_to_a_target_and_decodes_truncates_and_describes(video_file, capsys, tmp_path):
    out = tmp_path / "rc.mptvc"
    assert cli.main(["encode", str(video_file), str(out), "--target-psnr", "27", "--no-skip-frames"]) == 0
    header = parse_header(out.read_bytes())
    assert header.version == 4 and header.rate.target_kind == "psnr" and header.rate.target == 27.0
    assert not any(any(c.skipped) for c in header.rate.chunks)
    assert cli.main(["info", str(out)]) == 0
    assert "target 27 dB PSNR: achieved" in capsys.readouterr().out
    for k in range(3):
        assert cli.main(["decode", str(out), str(tmp_path / f"k{k}.npy"), "--k-max", str(k)]) == 0
        assert cli.main(["truncate", str(out), str(tmp_path / f"t{k}.mptvc"), "--k-max", str(k)]) == 0
        assert cli.main(["decode", str(tmp_path / f"t{k}.mptvc"), str(tmp_path / f"t{k}.npy")]) == 0
        assert np.array_equal(np.load(tmp_path / f"k{k}.npy"), np.load(tmp_path / f"t{k}.npy"))
    capsys.readouterr()
    assert cli.main(["encode", str(video_file), str(tmp_path / "no.mptvc"), "--target-bpp", "9"]) == 2
    err = capsys.readouterr().err
    assert "The target bpp 9.0000 is outside what this codec reaches" in err and "--best-effort" in err
    assert not (tmp_path / "no.mptvc").exists()
    assert cli.main(["encode", str(video_file), str(tmp_path / "b.mptvc"), "--target-bpp", "9", "--best-effort"]) == 0
    assert cli.main(["encode", str(video_file), str(tmp_path / "c.mptvc"), "--best-effort"]) == 2
    assert "need a target" in capsys.readouterr().err


def test_a_store_records_and_exposes_which_tokens_were_sent(shipped, video_file, targeted, tmp_path):
    from mptvc_latents.formats.token_store import TokenStore
    from mptvc_latents.store import TokenDataset, tokenize

    target = rc.RateTarget(psnr=27.0)
    summary = tokenize([video_file], tmp_path / "s.zarr", shipped, progress=False, target=target)
    assert len(summary.written) == 1
    store = TokenStore.open(tmp_path / "s.zarr", shipped)
    (key,) = store.clips()
    tokens, meta, compressed = store.read_tokens(key), store.clip_attrs(key), targeted
    levels = [c.levels for c in compressed.rate.chunks]
    assert meta["rate"] == {"target": {"psnr": 27.0}, "levels_per_chunk": levels}
    assert np.array_equal(tokens.mask, compressed.rate.mask([8] * 4, 3)) and tokens.mask.shape == (32, 3)
    assert len(set(levels)) > 1 or tokens.mask.min() == 0  # something was not sent
    for k in range(3):
        assert np.array_equal(shipped.decode(tokens, k_max=k), shipped.decompress(compressed, k_max=k))
        unsent = tokens.mask[:, k] == 0
        dropped = np.repeat([n <= k for n in levels], 8)
        assert not tokens.symbols[k][dropped].any()  # a level not sent holds zeros
        for t in np.flatnonzero(unsent & ~dropped):  # a skipped token frame holds the frame before it
            assert t % 8 and np.array_equal(tokens.symbols[k][t], tokens.symbols[k][t - 1])
    item = TokenDataset(tmp_path / "s.zarr", window=8)[1]
    assert np.array_equal(item["mask"].numpy(), tokens.mask[8:16])
    again = tokenize([video_file], tmp_path / "s.zarr", shipped, progress=False, target=target)
    assert again.skipped == [key]  # same target: kept
    other = tokenize([video_file], tmp_path / "s.zarr", shipped, progress=False)
    assert other.written == [key] and TokenStore.open(tmp_path / "s.zarr").read_mask(key) is None


def test_a_store_of_an_older_layout_refuses_rate_controlled_clips(shipped, video_file, tmp_path):
    import zarr

    from mptvc_latents.store import tokenize

    tokenize([video_file], tmp_path / "old.zarr", shipped, progress=False, levels=1)
    root = zarr.open_group(str(tmp_path / "old.zarr"), mode="r+", use_consolidated=False)
    root.attrs["version"] = 2
    with pytest.raises(ValueError, match="layout v2, which cannot record which tokens"):
        tokenize([video_file], tmp_path / "old.zarr", shipped, progress=False, target=rc.RateTarget(psnr=27.0))
    with pytest.raises(ValueError, match="leave levels out"):
        tokenize([video_file], tmp_path / "x.zarr", shipped, progress=False, levels=2, target=rc.RateTarget(psnr=27.0))


def test_the_datasets_builder_exposes_the_mask(video_file, targeted, tmp_path):
    pytest.importorskip("datasets")
    from mptvc_latents.hf import load_token_dataset

    ds = load_token_dataset(video_file, cache_dir=tmp_path / "cache", target={"psnr": 27.0})
    row = ds[0]
    mask = np.asarray(row["mask"], np.uint8).reshape(row["mask_shape"])
    assert np.array_equal(mask, targeted.rate.mask([8] * 4, 3))
    plain = load_token_dataset(video_file, cache_dir=tmp_path / "cache", k_max=0)
    assert "mask" not in plain.column_names


def test_tiled_frames_short_videos_and_skips_without_trained_tables_decode_as_measured():
    """Frames larger than the tile (the transformers run in blended tiles), a chunk shorter than the
    others and a context model with uniform tables: the decoder still gets the recorded SSE."""
    import dataclasses

    from mptvc_latents.config import ContextConfig
    from mptvc_latents.train.entropy import with_context_model
    from tests._tiny import random_video, tiny_config, tiny_model

    base = tiny_model(dataclasses.replace(tiny_config(), tile=(32, 32), tile_overlap=(16, 16)))
    model = with_context_model(base, ContextConfig(intra_period=2))
    video = random_video(20, 48, 40, seed=3)  # 3 chunks of 8 (the last of 4 frames padded), 2x2 tiles
    measures, info = rc.measure(model, lambda: [video[:7], video[7:]], 25.0, lam_skip=1e12)
    assert any(not m.sent[k].all() for m in measures for k in (1, 2))
    for levels in ((3, 3, 3), (3, 1, 2), (1, 2, 3)):
        compressed = rc.assemble(model, measures, info, levels, rc.RateTarget(bpp=1.0))
        data = write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
        read = read_mptvc(data)[0]
        for k in range(3):
            assert _sse(model.decompress(read, k_max=k), video) == sum(c.sse[k] for c in compressed.rate.chunks)
    one = random_video(1, 16, 16)
    compressed = model.compress(one, 25.0, target=rc.RateTarget(psnr=1.0, best_effort=True))
    assert _sse(model.decompress(compressed), one) == sum(c.sse[-1] for c in compressed.rate.chunks)
