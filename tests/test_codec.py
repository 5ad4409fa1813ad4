"""The MPT-VC codec end to end: equivariance, Matryoshka prefixes, rate, tiling, determinism,
any size, checkpoints, bf16 and input validation.

Every model here is tiny (K=3 levels 16/16/32 wide, one block each way, radius 1) and every
video small, so the file runs in seconds on a CPU.
"""

import dataclasses
import functools
import itertools
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mptvc_latents.codec import MPTVC, format1_name, format2_name
from mptvc_latents.config import CodecConfig, HyperpriorConfig, LevelConfig
from mptvc_latents.tiling import run_tiled, tile_weights
from mptvc_latents.types import Compressed, Tokens
from mptvc_latents.video import read_video
from tests._tiny import SAMPLE
from tests._tiny import random_video as _uint8_video
from tests._tiny import tiny_config as _config
from tests._tiny import tiny_model as _model

K = 3


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _raises_sentence(fn, *words: str) -> str:
    """Call ``fn``, expect a ValueError whose message is a full sentence naming ``words``."""
    with pytest.raises(ValueError) as info:
        fn()
    message = str(info.value)
    assert message == message.strip() and message.endswith("."), f"not a sentence: {message!r}"
    assert len(message.split()) >= 5, f"too terse: {message!r}"
    for word in words:
        assert word in message, f"{word!r} missing from {message!r}"
    return message


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Run on one thread: these tiny ops gain nothing from more, and with a second process busy
    on a 2-core machine two OpenMP threads make them about 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> MPTVC:
    """Shared tiny codec; tests must not modify it (bf16 and save/load build their own)."""
    return _model()


@pytest.fixture(scope="module")
def cut_clip() -> np.ndarray:
    """16 frames (18..33) of the sample clip, 136x320, with its hard cut at frame 4."""
    return read_video(SAMPLE, max_frames=16, start=18).frames


@pytest.fixture(scope="module")
def video(cut_clip) -> np.ndarray:
    """16 frames of 48x96: two chunks of 8, a scene cut inside the first."""
    return np.ascontiguousarray(cut_clip[:, 40:88, 100:196])


# ---------------------------------------------------------------------------- 1. equivariance


def test_shifting_the_video_by_one_patch_shifts_the_latents_of_every_level_by_one_token(model, cut_clip):
    """Attention windows slide with the query and RoPE sees coordinate differences only, the
    pyramid's 2x2 pooling and bilinear x2 commute with an 8 px shift (a multiple of 2^(K-1)), so
    shifting the input by one patch shifts every level's latents by one token, away from the
    borders. The closed loop chains g_a^0, g_s^0, up, g_a^1, ... so the border effect reaches a
    few tokens per level (about 5 at the top level with depth 1 and radius 1); we compare the
    32-token-wide grid with a margin of 8 tokens on each side.
    """
    width, margin = 256, 8
    x = torch.from_numpy(np.ascontiguousarray(cut_clip[:8, :32, : width + 8]))  # (8, 32, 264, 3), one scene
    x = x.permute(3, 0, 1, 2)[None].float() / 127.5 - 1.0  # (1, 3, T, H, W)
    assert max(x.shape[-2:]) < min(model.config.tile), "the frame must fit one tile so tiling is off"
    t_pos = model._t_pos(8, None)
    symbols, bounds = model._analyze(x[..., :width], t_pos)
    shifted_symbols, shifted_bounds = model._analyze(x[..., 8 : width + 8], t_pos)

    tokens = width // 8
    inner = slice(margin, tokens - 1 - margin)  # token j of the shifted video is token j + 1 of the original
    inner_next = slice(margin + 1, tokens - margin)
    for k in range(K):
        assert bounds[k].shape[-1] == tokens
        torch.testing.assert_close(shifted_bounds[k][..., inner], bounds[k][..., inner_next], rtol=0, atol=1e-5)
        same = (shifted_symbols[k][..., inner] == symbols[k][..., inner_next]).double().mean().item()
        assert same > 0.995, f"level {k}: only {same:.2%} of the interior symbols follow the shift"
        # The comparison has teeth: without the one-token offset the latents disagree.
        assert (shifted_bounds[k][..., inner] - bounds[k][..., inner]).abs().max() > 0.5
        unshifted_same = (shifted_symbols[k][..., inner] == symbols[k][..., inner]).double().mean().item()
        assert unshifted_same < 0.95, f"level {k}: symbols barely vary along x ({unshifted_same:.2%} agree unshifted)"


# ---------------------------------------------------------------------------- 2. Matryoshka prefixes


def test_decode_up_to_k_max_ignores_the_symbols_of_the_levels_above(model, video):
    tokens = model.encode(video)
    rng = np.random.default_rng(1)
    decoded = [model.decode(tokens, k) for k in range(K)]
    for k_max in range(K - 1):
        corrupted = [s.copy() for s in tokens.symbols]
        for k in range(k_max + 1, K):
            corrupted[k] = rng.integers(0, 8, corrupted[k].shape, dtype=np.uint8)
        assert np.array_equal(model.decode(Tokens(corrupted, tokens.info), k_max), decoded[k_max])
        # A decoder that only holds the prefix decodes the same video.
        assert np.array_equal(model.decode(Tokens(tokens.symbols[: k_max + 1], tokens.info)), decoded[k_max])
    for k in range(K):  # and every level does change the picture, so the above can fail
        corrupted = [s.copy() for s in tokens.symbols]
        corrupted[k] = (corrupted[k] + 1) % 8
        assert not np.array_equal(model.decode(Tokens(corrupted, tokens.info), k), decoded[k])
    assert not np.array_equal(decoded[0], decoded[1]) and not np.array_equal(decoded[1], decoded[2])


def test_decompress_up_to_k_max_equals_decode_of_the_tokens_bit_exactly(model, video):
    tokens = model.encode(video)
    compressed = model.compress(video)
    assert len(compressed.segments) == K and all(len(level) == 2 for level in compressed.segments)  # 2 chunks
    for k_max in range(K):
        expected = model.decode(tokens, k_max)
        assert expected.dtype == np.uint8 and expected.shape == video.shape
        assert np.array_equal(model.decompress(compressed, k_max), expected)
        prefix = Compressed(compressed.segments[: k_max + 1], compressed.info)  # a truncated stream
        assert np.array_equal(model.decompress(prefix), expected)


# ---------------------------------------------------------------------------- 3. rate


def _rate_model() -> MPTVC:
    """K=3 with 4 latent channels of 64 FSQ levels per level, scales in [0.3, 32].

    Each level and chunk is two streams (z, y) with a fixed cost of at most 33 bytes each
    (32 bytes of flushed rANS states and a header byte, ``docs/range_coder.md``), so for that
    to be below 1% the latent must carry well over 100 kbit. With the 8-level alphabet of the
    other tests a random-init model codes under 3 bits per symbol and a 16-frame 128x320 crop
    holds only ~11 kB (1.3% fixed cost); 64 levels (and a scale bank wide enough for them)
    make it ~38 kB (0.4%) without touching the weights. Nothing about the estimate changes:
    it must count exactly the table bits the coder spends.
    """
    hp = HyperpriorConfig(hyper_channels=4, hidden=16, sigma_max=32.0)
    levels = tuple(
        LevelConfig(dim=d, heads=1, latent_channels=4, fsq_levels=64, encoder_depth=1, decoder_depth=1, hyperprior=hp)
        for d in (16, 16, 32)
    )
    return _model(CodecConfig(levels=levels, radius=(1, 1, 1), chunk_frames=16))


def test_estimated_bits_are_within_one_percent_of_the_compressed_size_of_the_sample_clip(cut_clip):
    model = _rate_model()
    clip = np.ascontiguousarray(cut_clip[:, 4:132, :320])  # (16, 128, 320, 3)
    compressed = model.compress(clip)
    x, info = model._prepare(clip, 25.0)
    estimated = 0.0
    streams = 0
    for c, chunk in enumerate(model._chunks(info)):
        scenes = info.scene_ids[chunk]
        symbols, bounds = model._analyze(x[:, :, chunk], model._t_pos(chunk.stop - chunk.start, scenes))
        with torch.no_grad():
            out = model(x[:, :, chunk], scene_ids=scenes)  # eval mode: the exact float64 coding path
        for k in range(K):
            bits = model.levels[k].hyperprior.estimate_bits(bounds[k], symbols[k])
            assert float(out.bits_y[k] + out.bits_z[k]) == pytest.approx(bits, rel=1e-6)
            estimated += bits
            z_bytes, y_bytes = compressed.segments[k][c]
            # Per stream: the coded size is the table bits plus a fixed cost of at most 33 bytes.
            for name, data, stream_bits in (("z", z_bytes, out.bits_z[k]), ("y", y_bytes, out.bits_y[k])):
                overhead = 8 * len(data) - float(stream_bits)
                assert -1.0 <= overhead <= 8 * 33, f"level {k} chunk {c} {name}: {overhead:.1f} bits over the estimate"
            streams += 2

    actual = 8 * sum(compressed.level_bytes())
    assert 8 * 33 * streams < 0.01 * actual, "the latent is too small for the fixed cost to stay below 1%"
    assert abs(actual - estimated) / actual < 0.01, f"estimated {estimated / 8:.0f} B, coded {actual / 8:.0f} B"


# ---------------------------------------------------------------------------- 4. tiling


@pytest.mark.parametrize(
    ("height", "width", "tile", "overlap"),
    [(10, 20, (6, 12), (2, 4)), (9, 23, (4, 8), (1, 3)), (7, 5, (8, 8), (2, 2)), (8, 16, (4, 4), (0, 0))],
)
def test_tile_weights_are_a_partition_of_unity_and_one_inside_each_tile(height, width, tile, overlap):
    tiles = tile_weights(height, width, tile, overlap)
    total = torch.zeros(height, width)
    cover = torch.zeros(height, width, dtype=torch.int64)
    for y0, x0, w in tiles:
        th, tw = w.shape
        assert th == min(tile[0], height) and tw == min(tile[1], width)
        assert y0 + th <= height and x0 + tw <= width
        assert bool((w >= 0).all()) and bool((w <= 1).all())
        total[y0 : y0 + th, x0 : x0 + tw] += w
        cover[y0 : y0 + th, x0 : x0 + tw] += 1
    torch.testing.assert_close(total, torch.ones(height, width), rtol=0, atol=1e-6)
    for y0, x0, w in tiles:  # where no other tile reaches, a tile's weight is exactly one
        alone = cover[y0 : y0 + w.shape[0], x0 : x0 + w.shape[1]] == 1
        assert bool(alone.any()) and bool((w[alone] == 1.0).all())
    # Neighbouring tiles share at least the requested overlap.
    ys, xs = sorted({y0 for y0, _, _ in tiles}), sorted({x0 for _, x0, _ in tiles})
    th, tw = tiles[0][2].shape
    assert all(b - a <= th - min(overlap[0], th - 1) for a, b in itertools.pairwise(ys))
    assert all(b - a <= tw - min(overlap[1], tw - 1) for a, b in itertools.pairwise(xs))


def test_tile_weights_ignore_a_margin_at_inner_tile_edges():
    """A token within ``margin`` of a tile's inner edge gets weight 0 from that tile; the sum stays 1."""
    tiles = tile_weights(1, 40, (1, 16), (0, 8), margin=(0, 2))
    total = torch.zeros(1, 40)
    for _, x0, w in tiles:
        total[:, x0 : x0 + w.shape[1]] += w
        if x0 > 0:
            assert bool((w[:, :2] == 0).all())
        if x0 + w.shape[1] < 40:
            assert bool((w[:, -2:] == 0).all())
    torch.testing.assert_close(total, torch.ones(1, 40), rtol=0, atol=1e-6)


def test_run_tiled_of_a_pointwise_function_is_the_function_of_the_whole_grid():
    """Blending identical tile outputs with a partition of unity gives them back (to float
    rounding in the overlaps, exactly where a single tile covers a token)."""
    torch.manual_seed(0)
    grid = torch.randn(2, 3, 10, 23, 4)  # (B, T, H, W, D)
    mix = torch.randn(4, 5)

    def fn(g):
        return torch.tanh(g) @ mix + g.sum(-1, keepdim=True) ** 2  # pointwise over (B, T, H, W)

    tile, overlap = (4, 8), (1, 3)
    out = run_tiled(fn, grid, tile, overlap)
    expected = fn(grid)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    cover = torch.zeros(10, 23, dtype=torch.int64)
    for y0, x0, w in tile_weights(10, 23, tile, overlap):
        cover[y0 : y0 + w.shape[0], x0 : x0 + w.shape[1]] += 1
    alone = cover == 1
    assert bool(alone.any()) and torch.equal(out[:, :, alone], expected[:, :, alone])
    assert torch.equal(run_tiled(fn, grid, (10, 23), (0, 0)), expected)  # one tile: fn itself


def test_run_tiled_of_a_local_function_is_exact_away_from_tile_borders():
    """A 3-tap mean along W (support 1) run on tiles is wrong only within one token of a tile's
    inner edge (where the tile cut the neighbourhood); with the overlap (4) above the support,
    every other token is exact."""
    torch.manual_seed(0)
    grid = torch.randn(1, 2, 3, 30, 2)  # (B, T, H, W, D)

    def fn(g):
        padded = torch.nn.functional.pad(g, (0, 0, 1, 1))  # zeros beyond the edge of whatever it sees
        return (padded[:, :, :, :-2] + padded[:, :, :, 1:-1] + padded[:, :, :, 2:]) / 3

    tile, overlap, support = (3, 10), (0, 4), 1
    out = run_tiled(fn, grid, tile, overlap)
    expected = fn(grid)
    near_edge = torch.zeros(30, dtype=torch.bool)
    for _, x0, w in tile_weights(3, 30, tile, overlap):
        if x0 > 0:
            near_edge[x0 : x0 + support] = True
        if x0 + w.shape[1] < 30:
            near_edge[x0 + w.shape[1] - support : x0 + w.shape[1]] = True
    assert 0 < int(near_edge.sum()) < 30
    torch.testing.assert_close(out[:, :, :, ~near_edge], expected[:, :, :, ~near_edge], rtol=0, atol=1e-6)
    assert (out[:, :, :, near_edge] - expected[:, :, :, near_edge]).abs().max() > 1e-3  # the cut is real


def test_tiled_codec_matches_the_untiled_codec_without_visible_seams(cut_clip):
    """80x160 frames in tiles of 48x96 px with 16x32 px overlaps: 2 x 2 tiles of 6x12 tokens
    meeting in rows 4-5 and columns 8-11 of the token grid. The untrained model cannot
    reconstruct the source, so the reference is the same model untiled (what tiling
    approximates): the tiled video differs from it by a fraction of a grey level on average,
    and no more at the seams than inside the tiles beyond a small margin.
    """
    config = _config(tile=(48, 96), tile_overlap=(16, 32))
    tiled = _model(config)
    untiled = _model(dataclasses.replace(config, tile=(1024, 1024), tile_overlap=(0, 0)))
    assert tiled.tables_digest() == untiled.tables_digest()
    clip = np.ascontiguousarray(cut_clip[:, 20:100, 100:260])  # (16, 80, 160, 3)
    tokens, reference_tokens = tiled.encode(clip), untiled.encode(clip)
    assert [s.shape for s in tokens.symbols] == [(4, 10, 20, c) for c in (2, 3, 4)]
    for k in range(K):
        assert (tokens.symbols[k] == reference_tokens.symbols[k]).mean() > 0.98
    decoded, reference = tiled.decode(tokens), untiled.decode(reference_tokens)
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert np.array_equal(tiled.decompress(tiled.compress(clip)), decoded)

    error = np.abs(decoded.astype(np.int16) - reference.astype(np.int16)).astype(np.float64)
    assert error.mean() < 0.25, f"tiled differs from untiled by {error.mean():.3f} grey levels on average"
    seam_cols = np.zeros(160, dtype=bool)
    seam_cols[8 * 8 : 12 * 8] = True  # tokens 8..11 at 8 px
    seam_rows = np.zeros(80, dtype=bool)
    seam_rows[4 * 8 : 6 * 8] = True  # tokens 4..5
    interior = error[:, ~seam_rows][:, :, ~seam_cols].mean()
    assert error[:, :, seam_cols].mean() <= interior + 0.5
    assert error[:, seam_rows].mean() <= interior + 0.5
    assert error.mean(axis=(0, 2, 3)).max() < 1.0 and error.mean(axis=(0, 1, 3)).max() < 1.0  # no line stands out


def test_tiles_overlapping_by_twice_the_reach_match_the_untiled_codec(cut_clip):
    """With the overlap above 2 x reach + 1 tokens (reach = depth x radius = 1 here), every token
    with non-zero blend weight is computed exactly as the whole frame computes it, so tiling is
    invisible: the same symbols, and decoded pixels equal up to float rounding (+-1 grey level
    at a handful of pixels)."""
    config = _config(tile=(48, 96), tile_overlap=(32, 48))  # 4 x 6 tokens of overlap, margin 1
    tiled = _model(config)
    untiled = _model(dataclasses.replace(config, tile=(1024, 1024), tile_overlap=(0, 0)))
    clip = np.ascontiguousarray(cut_clip[:, 20:100, 100:260])  # (16, 80, 160, 3): 3 x 3 tiles
    tokens, reference_tokens = tiled.encode(clip), untiled.encode(clip)
    for k in range(K):
        assert (tokens.symbols[k] == reference_tokens.symbols[k]).mean() > 0.999
    error = np.abs(tiled.decode(tokens).astype(np.int16) - untiled.decode(tokens).astype(np.int16))
    assert error.max() <= 1 and error.mean() < 1e-3, f"tiled decode differs: mean {error.mean():.2e}, max {error.max()}"


# ---------------------------------------------------------------------------- 5. determinism


def test_encode_decode_and_compress_are_deterministic_across_calls_and_thread_counts(model, video):
    tokens, again = model.encode(video), model.encode(video)
    assert all(np.array_equal(a, b) for a, b in zip(tokens.symbols, again.symbols, strict=True))
    assert np.array_equal(model.decode(tokens), model.decode(again))
    assert model.compress(video).segments == model.compress(video).segments
    small = np.ascontiguousarray(video[:8, :32, :64])  # small: two threads crawl while another job runs
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = model.compress(small)
        torch.set_num_threads(2)
        double = model.compress(small)
    finally:
        torch.set_num_threads(threads)
    assert single.segments == double.segments


# ---------------------------------------------------------------------------- 6. any size and length


@pytest.mark.parametrize(("frames", "height", "width"), [(13, 37, 53), (20, 16, 16), (1, 5, 7)])
def test_videos_of_any_size_and_length_round_trip_to_their_own_shape(model, frames, height, width):
    video = _uint8_video(frames, height, width)
    tokens = model.encode(video)
    padded_t, padded_h, padded_w = -(-frames // 8) * 8, -(-height // 16) * 16, -(-width // 16) * 16
    assert tokens.info.padded_shape == (padded_t, padded_h, padded_w)
    assert [s.shape for s in tokens.symbols] == [(padded_t // 4, padded_h // 8, padded_w // 8, c) for c in (2, 3, 4)]
    assert all(s.dtype == np.uint8 for s in tokens.symbols)
    decoded = model.decode(tokens)
    assert decoded.shape == video.shape and decoded.dtype == np.uint8
    compressed = model.compress(video)
    assert all(len(level) == padded_t // 8 for level in compressed.segments)  # one segment per chunk
    assert np.array_equal(model.decompress(compressed), decoded)


def test_chunks_are_coded_independently(model):
    """Frames 8..15 (one scene throughout) code the same whether alone or as chunk 2 of 16."""
    clip = np.ascontiguousarray(read_video(SAMPLE, max_frames=16).frames[:, 40:88, 100:196])  # no cut in 0..15
    whole = model.encode(clip)
    assert not whole.info.scene_ids.any()
    second = model.encode(clip[8:])
    assert all(np.array_equal(a[2:], b) for a, b in zip(whole.symbols, second.symbols, strict=True))
    assert [level[1] for level in model.compress(clip).segments] == [
        level[0] for level in model.compress(clip[8:]).segments
    ]


def test_encode_accepts_non_contiguous_views(model, video):
    """A BGR -> RGB flip (negative strides) or a crop is a valid uint8 (T, H, W, 3) video."""
    flipped = video[..., ::-1]
    tokens = model.encode(flipped)
    expected = model.encode(np.ascontiguousarray(flipped))
    assert all(np.array_equal(a, b) for a, b in zip(tokens.symbols, expected.symbols, strict=True))
    assert model.decode(model.encode(video[:, 3:40, 5:90])).shape == (16, 37, 85, 3)


# ---------------------------------------------------------------------------- 7. checkpoints


def test_save_pretrained_and_load_round_trip_exactly(model, video, tmp_path):
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for name in files), files
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict())

    config = json.loads((tmp_path / "config.json").read_text())
    assert CodecConfig.from_dict(config) == model.config
    assert CodecConfig.from_dict(json.loads(json.dumps(model.config.to_dict()))) == model.config

    loaded = MPTVC.from_pretrained(tmp_path)
    assert isinstance(loaded.config, CodecConfig) and loaded.config == model.config
    assert not loaded.training
    assert loaded.tables_digest() == model.tables_digest()
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True)
    )
    tokens = model.encode(video)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.encode(video).symbols, tokens.symbols, strict=True))
    assert np.array_equal(loaded.decode(tokens), model.decode(tokens))
    assert loaded.compress(video).segments == model.compress(video).segments


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_loading_is_strict_about_the_tensors(model, tmp_path, change):
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    if change == "missing":
        name = "levels.1.g_s.transformer.norm.weight"
        del weights[name]
    else:
        name = "levels.1.g_s.unexpected"
        weights[name] = torch.zeros(3)
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        MPTVC.from_pretrained(str(tmp_path))


def test_format1_checkpoints_load_with_their_digests(model, tmp_path, video):
    """Checkpoints saved before a level was one module (``g_a.0.*``, ``hyperprior.0.*``) load into
    ``levels.0.g_a.*`` ...; the digests name tensors the format-1 way, so .mptvc files and token
    stores written before keep decoding."""
    model.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert all(name.startswith("levels.") for name in weights)
    old = {format1_name(name): t for name, t in weights.items()}
    assert not any(name.startswith("levels.") for name in old) and len(old) == len(weights)
    save_file(old, str(tmp_path / "model.safetensors"))
    loaded = MPTVC.from_pretrained(tmp_path)
    assert loaded.weights_digest() == model.weights_digest()
    assert loaded.tables_digest() == model.tables_digest()
    assert loaded.compress(video).segments == model.compress(video).segments
    assert all(format2_name(format1_name(name)) == name for name in weights)


def test_the_shipped_checkpoint_loads_every_tensor_of_its_file():
    from mptvc_latents.pretrained import default_checkpoint_dir

    stored = load_file(str(default_checkpoint_dir() / "model.safetensors"))
    model = MPTVC.from_pretrained()
    state = model.state_dict()
    assert {format2_name(name) for name in stored} == set(state)
    for name, tensor in stored.items():
        assert torch.equal(state[format2_name(name)].to(tensor.dtype), tensor), name


def test_the_digest_tells_checkpoints_of_one_config_apart(model):
    """The integer tables are fixed by the config; the digest also covers the hyperprior weights
    that pick the tables, so a stream from another training run of the same preset is refused."""
    other = _model(seed=1)
    assert other.config == model.config
    assert other.tables_digest() != model.tables_digest()
    retrained_decoder = _model()
    with torch.no_grad():
        retrained_decoder.levels[0].g_s.to_pixels.bias.add_(0.1)  # decoder weights do not enter the digest
    assert retrained_decoder.tables_digest() == model.tables_digest()


def test_load_without_safetensors_names_the_missing_file(model, tmp_path):
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")  # never unpickled
    _raises_sentence(lambda: MPTVC.from_pretrained(tmp_path), "model.safetensors")
    _raises_sentence(lambda: MPTVC.from_pretrained(tmp_path / "nowhere"), "nowhere")


# ---------------------------------------------------------------------------- 8. bf16


def test_bf16_transformers_decode_close_to_fp32_and_still_code_exactly(video):
    model = _model()
    tokens = model.encode(video)
    reference = model.decode(tokens)
    model.set_inference_dtype(torch.bfloat16)
    for g in (t for level in model.levels for t in (level.g_a, level.g_s)):
        assert all(p.dtype == torch.bfloat16 for p in g.transformer.parameters())
        assert all(p.dtype == torch.float32 for n, p in g.named_parameters() if not n.startswith("transformer."))
        ropes = [m for m in g.transformer.modules() if hasattr(m, "inv_freq_t")]
        assert ropes and all(getattr(r, f"inv_freq_{a}").dtype == torch.float64 for r in ropes for a in "tyx")
    assert all(p.dtype == torch.float32 for level in model.levels for p in level.hyperprior.parameters())

    decoded = model.decode(tokens)
    assert decoded.shape == reference.shape and decoded.dtype == np.uint8
    assert _mean_abs(decoded, reference) < 0.5
    assert not np.array_equal(decoded, reference)  # the dtype really changed

    bf16_tokens = model.encode(video)
    assert all((a == b).mean() > 0.97 for a, b in zip(bf16_tokens.symbols, tokens.symbols, strict=True))
    compressed = model.compress(video)
    assert np.array_equal(model.decompress(compressed), model.decode(bf16_tokens))
    for k in range(K):  # the entropy path returns exactly the bf16 encoder's symbols
        symbols = model.levels[k].decompress(
            compressed.segments[k][0], model.latent_shape(k, compressed.info, slice(0, 8))
        )
        assert np.array_equal(symbols[0].permute(1, 2, 3, 0).numpy(), bf16_tokens.symbols[k][:2])


# ---------------------------------------------------------------------------- 9. bad input


def test_bad_videos_are_refused_with_a_sentence(model):
    good = _uint8_video(8, 16, 16)
    for fn in (model.encode, model.compress):
        _raises_sentence(functools.partial(fn, good.astype(np.float32)), "uint8")
        _raises_sentence(functools.partial(fn, good[..., 0]), "(T, H, W, 3)")
        _raises_sentence(functools.partial(fn, good[..., :2]), "(T, H, W, 3)")
        _raises_sentence(functools.partial(fn, good[None]), "(T, H, W, 3)")
        _raises_sentence(functools.partial(fn, good[:0]), "empty")
        _raises_sentence(functools.partial(fn, good[:, :, :0]), "empty")


def test_k_max_out_of_range_is_refused_with_a_sentence(model):
    video = _uint8_video(8, 16, 16)
    tokens, compressed = model.encode(video), model.compress(video)
    for k_max in (-1, K):
        _raises_sentence(functools.partial(model.decode, tokens, k_max), "k_max", "0..2")
        _raises_sentence(functools.partial(model.decompress, compressed, k_max), "k_max", "0..2")
    _raises_sentence(lambda: model.decode(Tokens(tokens.symbols[:1], tokens.info), 1), "k_max", "0..0")
    _raises_sentence(lambda: model(torch.zeros(1, 3, 8, 16, 16), k_max=K), "k_max")
    _raises_sentence(lambda: model(torch.zeros(1, 3, 8, 16, 16), k_max=-1), "k_max")


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((1, 3, 6, 16, 16), ("6 frames", "multiple of 8")),
        ((1, 3, 8, 20, 16), ("20x16", "multiples of 16")),
        ((1, 3, 8, 16, 24), ("16x24", "multiples of 16")),
        ((1, 4, 8, 16, 16), ("(B, 3, T, H, W)",)),
        ((3, 8, 16, 16), ("(B, 3, T, H, W)",)),
    ],
)
def test_training_forward_off_the_grid_is_refused_with_a_sentence(model, shape, words):
    _raises_sentence(lambda: model(torch.zeros(shape)), *words)


def test_training_forward_refuses_integer_video(model):
    _raises_sentence(lambda: model(torch.zeros(1, 3, 8, 16, 16, dtype=torch.uint8)), "float", "uint8")


# ---------------------------------------------------------------------------- 10. training forward


def test_training_forward_gives_per_level_reconstructions_bits_and_finite_gradients():
    model = _model().train()
    torch.manual_seed(1)
    x = (torch.randn(2, 3, 8, 32, 48) * 0.5).clamp(-1, 1)  # (B, 3, T, H, W)
    out = model(x)
    targets = model.pyramid.gaussian(x)
    assert len(out.recon) == len(out.targets) == len(out.bits_y) == len(out.bits_z) == K
    for k in range(K):
        scale = 2 ** (K - 1 - k)
        assert out.recon[k].shape == out.targets[k].shape == (2, 3, 8, 32 // scale, 48 // scale)
        assert torch.equal(out.targets[k], targets[k])
        assert out.bits_y[k].shape == out.bits_z[k].shape == (2,)
        assert bool((out.bits_y[k] > 0).all()) and bool((out.bits_z[k] > 0).all())

    mse = sum(torch.mean((r - t) ** 2) for r, t in zip(out.recon, out.targets, strict=True))
    bits = sum((by + bz).sum() for by, bz in zip(out.bits_y, out.bits_z, strict=True))
    (mse + 1e-4 * bits).backward()
    for group in ("g_a", "g_s", "hyperprior"):
        for k, level in enumerate(model.levels):
            module = getattr(level, group)
            grads = {name: p.grad for name, p in module.named_parameters()}
            assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads.values()), f"{group}[{k}]"
            assert sum(float(g.norm()) for g in grads.values()) > 0, f"{group}[{k}] gets no gradient"

    truncated = model(x, k_max=0)
    assert len(truncated.recon) == 1 and truncated.recon[0].shape == (2, 3, 8, 8, 12)


# ---------------------------------------------------------------------------- configs that compose


def test_an_impossible_level_fails_at_construction_naming_its_fields():
    """A head of 4 channels cannot hold a 3D RoPE (two per axis): the level says so itself,
    not MPTVC() deep inside the RoPE."""
    message = _raises_sentence(lambda: LevelConfig(dim=8, heads=2, latent_channels=4, fsq_levels=8), "dim=8", "heads=2")
    assert "RoPEConfig.head_dim" in message
    _raises_sentence(lambda: LevelConfig(dim=64, heads=2, latent_channels=4, fsq_levels=300), "fsq_levels=300")


def test_codec_config_builds_and_validates_every_component():
    level = LevelConfig(dim=12, heads=2, latent_channels=4, fsq_levels=8)
    message = _raises_sentence(lambda: CodecConfig(levels=(level,), theta_base=0.5), "theta_base=0.5", "levels[0]")
    assert "RoPEConfig.theta_base" in message
    _raises_sentence(lambda: CodecConfig(levels=(level,), mlp_ratio=0), "mlp_ratio")
    config = CodecConfig(levels=(level, level), radius=(1, 2, 3), theta_jump=7.0)
    transformer = config.transformer(1, "decoder")
    assert transformer.block.radius == (1, 2, 3) and transformer.depth == level.decoder_depth
    assert transformer.block.rope == config.rope(1) and config.rope(1).theta_jump == 7.0
    assert config.levels[0].fsq.levels == (8,) * 4 and config.pyramid.levels == 2
    model = MPTVC(config)
    assert model.levels[1].g_s.transformer.config == transformer
    _raises_sentence(lambda: config.transformer(0, "middle"), "middle")


def test_training_autocast_runs_the_transformers_in_bf16_and_keeps_weights_and_rate_fp32():
    torch.manual_seed(0)
    model = _model().train()
    x = torch.rand(2, 3, 8, 32, 48) * 2 - 1
    reference = model(x)
    model.set_training_autocast(torch.bfloat16)
    out = model(x)
    for k in range(K):
        assert out.recon[k].dtype == torch.float32 and out.bits_y[k].dtype == reference.bits_y[k].dtype
        difference = (out.recon[k] - reference.recon[k]).abs().mean().item()
        assert 0 < difference < 0.01, f"level {k}: {difference}"  # bf16 really ran, and stays close
    sum(o.sum() for o in out.recon).backward()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())
    model.set_training_autocast(None)
    assert torch.equal(model(x).recon[-1], reference.recon[-1])
    _raises_sentence(lambda: model.set_training_autocast(torch.float64), "float64")
