"""The token prior (generation/): indices <-> symbols, save/load, sampling, bits, training, resuming.

A tiny store is made from the first 64 frames of the repo's sample clip at 32x32 with the shipped
codec (a 4x4 token grid); tiny priors (dim 32, one or two layers) keep every test to seconds.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.data import IndexWindows, fit_frames, indices_to_symbols, symbols_to_indices, tokenize_fixed
from generation.evaluate import clip_bits
from generation.model import PriorConfig, TokenPrior
from generation.sample import SampleConfig, decode_sample, draw, sample_indices, sample_symbols
from generation.train import TrainConfig, prior_config_for, train_prior
from mptvc_latents.codec import MPTVC
from mptvc_latents.config import FSQConfig
from mptvc_latents.quantization.fsq import FSQ
from tests._tiny import SAMPLE

TINY = dict(dim=32, depth=1, heads=2, mlp_dim=64)


@pytest.fixture(scope="module")
def codec(one_torch_thread):
    return MPTVC.from_pretrained()


@pytest.fixture(scope="module")
def store(codec, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "tiny.zarr"
    tokenize_fixed([SAMPLE], path, codec, size=(32, 32), max_frames=64)
    return path


def tiny_prior(seed: int = 0, **overrides) -> TokenPrior:
    torch.manual_seed(seed)
    return TokenPrior(PriorConfig(grid=(2, 4, 4), **{**TINY, **overrides})).eval()


def test_indices_and_symbols_round_trip_over_the_whole_codebook():
    fsq = FSQ(FSQConfig(levels=(8, 8, 8, 8)))
    indices = torch.arange(4096).reshape(16, 16, 16)
    symbols = indices_to_symbols(fsq, indices)  # (16, 16, 16, 4)
    assert symbols.dtype == torch.uint8 and symbols.shape == (16, 16, 16, 4)
    assert torch.equal(symbols_to_indices(fsq, symbols), indices)
    assert len({tuple(s) for s in symbols.reshape(-1, 4).tolist()}) == 4096
    # The prior's own radix (used to embed and to decode samples) is FSQ's.
    prior = tiny_prior()
    assert torch.equal(prior.basis, fsq.basis) and torch.equal(prior.levels, fsq.levels)


def test_fit_frames_crops_to_the_aspect_then_resizes():
    frames = np.zeros((3, 40, 100, 3), np.uint8)
    frames[:, :, 30:70] = 200  # the centre 40x40 square is bright, the sides dark
    out = fit_frames(frames, (16, 16))
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8
    assert (out == 200).all()


def test_tokenize_fixed_writes_a_store_of_one_grid_and_resumes(store, codec):
    windows = IndexWindows(store, window=2)
    assert (windows.grid.h, windows.grid.w, windows.grid.t) == (4, 4, 2)
    assert len(windows) == 16 - 1  # 64 frames -> 16 token frames, windows of 2 at stride 1
    assert windows[0].shape == (32,) and windows[0].dtype == torch.int64
    assert tokenize_fixed([SAMPLE], store, codec, size=(32, 32), max_frames=64) == []  # already there


def test_save_and_load_round_trip_is_exact(tmp_path):
    prior = tiny_prior(seed=1)
    prior.save_pretrained(tmp_path / "p")
    loaded = TokenPrior.from_pretrained(tmp_path / "p")
    assert loaded.config == prior.config
    a, b = prior.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    idx = torch.randint(0, 4096, (2, 32))
    assert torch.equal(prior(idx).logits, loaded(idx).logits)


def test_load_rejects_missing_folders_and_mismatched_weights(tmp_path):
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        TokenPrior.from_pretrained(tmp_path)
    tiny_prior().save_pretrained(tmp_path / "p")
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    (tmp_path / "p" / "config.json").write_text(json.dumps({**config, "depth": 2}))
    with pytest.raises(ValueError, match="could not be loaded"):
        TokenPrior.from_pretrained(tmp_path / "p")


def test_the_kv_cache_step_matches_the_full_forward():
    prior = tiny_prior(seed=2)
    idx = torch.randint(0, 4096, (3, 32))
    full = prior(idx).logits  # (3, 32, V)
    with torch.no_grad():
        step = prior.step(prior.bos.expand(3, 1, -1), 0, None)
        for i in range(1, 32):
            step = prior.step(prior.embed_indices(idx[:, i - 1 : i]), i, step.cache)
    torch.testing.assert_close(step.logits, full[:, -1], atol=1e-5, rtol=1e-5)


def test_a_fixed_seed_reproduces_the_exact_tokens_and_another_seed_differs():
    prior = tiny_prior(seed=3)
    a = sample_indices(prior, SampleConfig(frames=16, seed=7))
    b = sample_indices(prior, SampleConfig(frames=16, seed=7))
    c = sample_indices(prior, SampleConfig(frames=16, seed=8))
    assert a.shape == (1, 4, 4, 4)  # 16 frames -> 4 token frames: one window of 2, then 2 slid
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < 4096


def test_top_k_one_is_greedy_whatever_the_seed():
    prior = tiny_prior(seed=4)
    a = sample_indices(prior, SampleConfig(frames=8, seed=1, top_k=1))[0].reshape(-1)  # one window: 32 tokens
    b = sample_indices(prior, SampleConfig(frames=8, seed=2, top_k=1, temperature=3.0))[0].reshape(-1)
    assert torch.equal(a, b)
    # Teacher-forced on its own sample, the model's argmax is the sample at every position.
    assert torch.equal(prior(a[None]).logits[0].argmax(-1), a)


def test_draw_keeps_to_the_top_k_and_temperature_sharpens():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=g)
    top5 = torch.topk(logits, 5, dim=-1).indices
    for _ in range(50):
        picks = draw(logits, 1.0, 5, g)
        assert all(int(p) in top5[i].tolist() for i, p in enumerate(picks))
    assert torch.equal(draw(logits, 1e-4, 0, g), logits.argmax(-1))
    flat = torch.zeros(1, 8)
    counts = torch.bincount(torch.cat([draw(flat, 1.0, 0, g) for _ in range(800)]), minlength=8)
    assert counts.min() > 50  # equal logits: every index drawn, roughly 100 times each


def test_bad_sample_settings_raise():
    for bad in (dict(frames=0), dict(temperature=0.0), dict(temperature=float("nan")), dict(top_k=-1)):
        with pytest.raises(ValueError):
            SampleConfig(**bad)


def test_a_uniform_model_costs_log2_v_bits_per_token():
    prior = tiny_prior()
    with torch.no_grad():
        prior.head.weight.zero_()
        prior.head.bias.zero_()
    idx = torch.randint(0, 4096, (6, 4, 4))  # 6 token frames of 4x4
    for sliding in (False, True):
        assert clip_bits(prior, idx, sliding=sliding) == pytest.approx(idx.numel() * 12.0, rel=1e-9)
    bits = prior.bits(idx.reshape(3, 32))
    assert bits.shape == (3, 32) and torch.allclose(bits, torch.full_like(bits, math.log2(4096)))


def test_bits_are_the_cross_entropy_in_bits():
    prior = tiny_prior(seed=5)
    idx = torch.randint(0, 4096, (2, 32))
    out = prior(idx, idx)
    assert prior.bits(idx).mean().item() == pytest.approx(out.loss.item() / math.log(2), rel=1e-5)


def test_training_lowers_the_loss_on_a_tiny_store(store, tmp_path):
    config = prior_config_for(store, window=2, **TINY)
    assert config.grid == (2, 4, 4) and config.frame_size == (32, 32)
    train_prior(store, tmp_path / "run", config, TrainConfig(steps=40, batch=4, lr=3e-3, warmup=5, log_every=5))
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 40
    assert log[-1]["bits_per_token"] < log[0]["bits_per_token"] - 1.0
    assert TokenPrior.from_pretrained(tmp_path / "run" / "prior").config == config


def test_a_resumed_run_equals_an_uninterrupted_one(store, tmp_path):
    config = prior_config_for(store, window=2, **TINY)
    train = TrainConfig(steps=6, batch=2, warmup=2, save_every=100)
    whole = train_prior(store, tmp_path / "whole", config, train)
    for _ in range(3):  # max_seconds=0: each call does one step, saves and stops
        train_prior(store, tmp_path / "cut", config, train, max_seconds=0)
    resumed = train_prior(store, tmp_path / "cut", config, train)
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_samples_decode_to_the_requested_frames(codec):
    prior = TokenPrior(PriorConfig(grid=(2, 4, 4), frame_size=(32, 32), **TINY)).eval()
    symbols = sample_symbols(prior, SampleConfig(frames=10, seed=0))
    assert symbols.shape == (4, 4, 4, 4) and symbols.dtype == np.uint8  # 10 frames pad to 16: 4 token frames
    assert int(symbols.max()) < 8
    video = decode_sample(codec, symbols, 10, 25.0)
    assert video.shape == (10, 32, 32, 3) and video.dtype == np.uint8
    with pytest.raises(ValueError, match="do not make"):
        decode_sample(codec, symbols, 30, 25.0)


@pytest.mark.parametrize("name", ["prior-l0-256x256", "prior-l0-96x128"])
def test_the_shipped_priors_load_and_belong_to_the_shipped_codec(codec, name):
    from generation.pretrained import shipped_prior_dir

    folder = shipped_prior_dir(name)
    if not folder.is_dir():
        pytest.fail(f"The shipped prior is missing from {folder}.")
    prior = TokenPrior.from_pretrained(folder)
    assert prior.config.codec_digest == codec.weights_digest()
    assert prior.config.fsq_levels == tuple(FSQ(FSQConfig(levels=(8,) * 4)).config.levels)
    assert "x".join(map(str, prior.config.frame_size)) == name.rsplit("-", 1)[1]
    assert (folder / "model.safetensors").stat().st_size < 8_000_000


def test_priors_resolve_by_name_or_folder_and_refuse_anything_else(tmp_path):
    from generation.pretrained import DEFAULT_PRIOR, default_prior_dir, resolve_prior, shipped_prior_dir

    assert resolve_prior(None) == default_prior_dir() == shipped_prior_dir(DEFAULT_PRIOR)
    assert resolve_prior("prior-l0-96x128") == shipped_prior_dir("prior-l0-96x128")
    assert resolve_prior(tmp_path) == tmp_path
    with pytest.raises(ValueError, match="neither a folder nor a shipped prior"):
        resolve_prior("prior-l0-1x1")
    with pytest.raises(ValueError, match="no shipped prior named"):
        shipped_prior_dir("prior-l0-1x1")


def test_evaluate_scores_real_codec_bytes_and_the_prior_on_the_same_tokens(codec, store):
    from generation.data import fit_frames as fit
    from generation.evaluate import evaluate_prior, unigram_bits_table
    from mptvc_latents.video import read_video

    prior = TokenPrior(PriorConfig(grid=(2, 4, 4), frame_size=(32, 32), **TINY)).eval()
    with torch.no_grad():  # a uniform prior: exactly 12 bits per token
        prior.head.weight.zero_()
        prior.head.bias.zero_()
    table = unigram_bits_table(store, 4096)
    assert torch.exp2(-table).sum().item() == pytest.approx(1.0)
    report = evaluate_prior(prior, codec, [SAMPLE], max_frames=32, unigram=table, coded=True)
    (clip,) = report.clips
    # Coded for real: 12.09 bits a token (a uniform table, each index one slot short of 16 of 2^16)
    # plus 95 bytes of container, table and stream; it decoded back exactly or evaluate raised.
    assert 12.0 * clip.tokens < clip.prior_coded_bits < 12.1 * clip.tokens + 8 * 95 + 16
    frames = fit(read_video(SAMPLE, max_frames=32).frames, (32, 32))
    assert clip.frames == 32 and clip.tokens == 8 * 4 * 4
    assert clip.codec_bits == 8 * codec.compress(frames, 25.0).level_bytes()[0]
    totals = report.totals()
    assert totals["prior_windows"] == pytest.approx(12.0) and totals["prior_sliding"] == pytest.approx(12.0)
    assert totals["unigram"] < 12.0  # these tokens are in the store the histogram came from


def test_the_prior_plays_at_the_most_common_frame_rate_of_its_store(codec, tmp_path):
    from mptvc_latents.video import FrameWriter, read_video

    frames = read_video(SAMPLE, max_frames=16).frames
    clips = []
    for name, fps in (("a_first.mp4", 25.0), ("b.mp4", 10.0), ("c.mp4", 10.0)):
        with FrameWriter(tmp_path / name, fps) as writer:
            writer.write(frames)
        clips.append(tmp_path / name)
    store = tmp_path / "rates.zarr"
    tokenize_fixed(clips, store, codec, size=(32, 32), max_frames=16)
    assert prior_config_for(store, window=2, **TINY).fps == 10.0  # not the first clip's 25
