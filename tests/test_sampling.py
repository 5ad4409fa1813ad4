"""Sampling the finer levels from the context entropy models (issue 19): table draws follow the
integer frequencies, the sampler walks the decoder's order with the encoder's contexts, and
``sample_finer_levels`` / ``mptvc generate --levels`` give reproducible tokens of every level."""

from pathlib import Path

import numpy as np
import pytest
import torch

from generation.model import PriorConfig, TokenPrior
from mptvc_latents import cli
from mptvc_latents.codec import MPTVC
from mptvc_latents.config import ContextConfig
from mptvc_latents.entropy.cdf import quantize_pmf
from mptvc_latents.entropy.context import ContextModel, LevelContext
from mptvc_latents.entropy.tables import GaussianTableBank
from mptvc_latents.sampling import sample_finer_levels
from tests._tiny import random_video, tiny_model


@pytest.fixture(scope="module")
def codec(one_torch_thread) -> MPTVC:
    return MPTVC.from_pretrained().eval()


@pytest.fixture(scope="module")
def tokens(codec):
    return codec.encode(random_video(40, 48, 64, seed=3), 25.0)


def test_table_draws_follow_the_integer_frequencies_and_never_the_escape():
    bank = GaussianTableBank(0.5, 8.0, 4, (-3, 3), tail=True)
    index = np.repeat(np.arange(4, dtype=np.int32), 40_000)
    values = bank.sample(index, np.random.default_rng(0))
    assert values.shape == index.shape and values.dtype == np.int32
    assert values.min() >= -3 and values.max() <= 3  # the escape (outside [-3, 3]) is never drawn
    cdfs = bank.cdfs.numpy().astype(np.float64)
    for i in range(4):
        freq = np.diff(cdfs[i])[:-1]  # (7,): the in-range values, escape dropped
        expected = freq / freq.sum()
        observed = np.bincount(values[index == i] + 3, minlength=7) / 40_000
        assert np.abs(observed - expected).max() < 0.01, (i, observed, expected)
    again = bank.sample(index, np.random.default_rng(0))
    assert np.array_equal(values, again)  # a seed reproduces the draw
    with pytest.raises(ValueError, match="table index"):
        bank.sample(np.array([4]), np.random.default_rng(0))


def _deterministic_model(config: ContextConfig, levels: int = 8, channels: int = 3) -> ContextModel:
    """Tables that put all but the minimal mass on ``context % levels``: a draw reveals its context."""
    model = ContextModel(config, levels=levels, channels=channels, has_coarser=True, n_scales=16, uses_hyper=True)
    pmf = np.full((model.num_contexts, levels), 1e-9)
    pmf[np.arange(model.num_contexts), np.arange(model.num_contexts) % levels] = 1.0
    pmf /= pmf.sum(1, keepdims=True)
    cdfs = quantize_pmf(pmf)
    model.set_tables(cdfs, np.full(model.num_contexts, cdfs.shape[1], np.int32), np.zeros(model.num_contexts, np.int32))
    return model


@pytest.mark.parametrize("with_previous", [False, True])
def test_the_sampler_draws_each_symbol_from_the_context_the_encoder_computes(with_previous):
    """With near-deterministic tables every drawn symbol equals ``context % L`` of the context that
    ``ContextModel.contexts`` (the encoder's) computes from the finished sample: the sampler used the
    decoder's order and contexts, channel changes included."""
    model = _deterministic_model(ContextConfig())
    rng = np.random.default_rng(1)
    scale = rng.integers(0, 16, (3, 4, 5, 6)).astype(np.int32)  # (C, T', H', W')
    context = LevelContext(
        coarser=rng.integers(0, 8, (2, 4, 5, 6)).astype(np.uint8),
        previous=rng.integers(0, 8, (3, 5, 6)).astype(np.uint8) if with_previous else None,
        coarser_previous=rng.integers(0, 8, (2, 5, 6)).astype(np.uint8) if with_previous else None,
    )
    symbols = model.sample_symbols(scale, context, np.random.default_rng(2))
    assert symbols.shape == scale.shape and symbols.dtype == np.uint8
    expected = model.contexts(symbols, scale, context) % 8
    assert (symbols == expected).mean() > 0.99
    # the same tables decode what they encode (the decoder shares the sampler's walk)
    assert np.array_equal(model.decode(model.encode(symbols, scale, context), scale, context), symbols)


def test_finer_levels_are_drawn_reproducibly_given_level_0(codec, tokens):
    a = sample_finer_levels(codec, tokens, seed=4)
    b = sample_finer_levels(codec, tokens, seed=4)
    c = sample_finer_levels(codec, tokens, seed=5)
    assert [s.shape for s in a.symbols] == [s.shape for s in tokens.symbols]
    assert np.array_equal(a.symbols[0], tokens.symbols[0])  # level 0 is given, not drawn
    assert all(np.array_equal(x, y) for x, y in zip(a.symbols, b.symbols, strict=True))
    assert not np.array_equal(a.symbols[2], c.symbols[2])
    for k in (1, 2):
        levels = codec.config.levels[k].fsq_levels
        assert a.symbols[k].dtype == np.uint8 and int(a.symbols[k].max()) < levels
    # fewer levels: the same draw of level 1 (levels are drawn in the Matryoshka order)
    two = sample_finer_levels(codec, tokens, levels=2, seed=4)
    assert len(two.symbols) == 2 and np.array_equal(two.symbols[1], a.symbols[1])
    video = codec.decode(a, k_max=2)
    assert video.shape == (40, 48, 64, 3)


def test_sampling_refuses_a_codec_without_context_tables_and_bad_levels(codec, tokens):
    with pytest.raises(ValueError, match="context entropy model"):
        sample_finer_levels(tiny_model(), tokens)
    with pytest.raises(ValueError, match="levels must lie in 1..3"):
        sample_finer_levels(codec, tokens, levels=4)


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory, codec) -> Path:
    torch.manual_seed(0)
    config = PriorConfig(
        grid=(2, 4, 4),
        frame_size=(32, 32),
        fps=10.0,
        codec_digest=codec.weights_digest(),
        dim=32,
        depth=1,
        heads=2,
        mlp_dim=64,
    )
    path = tmp_path_factory.mktemp("sampling") / "prior"
    TokenPrior(config).save_pretrained(path)
    return path


def test_generate_samples_every_level_by_default_and_the_preview_with_levels_1(prior_dir, tmp_path, capsys):
    def generate(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / f"{name}.npy"
        argv = ["generate", "--prior", str(prior_dir), "--out", str(out), "--frames", "8", "--seed", "2", "--no-gif"]
        assert cli.main([*argv, *extra]) == 0
        return np.load(out)

    full, again, preview = generate("full"), generate("again"), generate("preview", "--levels", "1")
    assert full.shape == preview.shape == (8, 32, 32, 3)
    assert np.array_equal(full, again)  # the seed fixes every level
    assert not np.array_equal(full, preview)  # the finer levels add detail to the same level 0
    assert cli.main(["generate", "--prior", str(prior_dir), "--out", str(tmp_path / "x.npy"), "--levels", "4"]) != 0
    assert "levels must lie in 1..3" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


def test_tokens_are_coded_losslessly_with_the_bytes_of_compress(codec, tokens):
    """``compress_tokens`` gives the bytes ``compress`` gave the video (z comes from the symbols with
    a context model), ``decompress_tokens`` the tokens back; sampled tokens round-trip too, and a
    prefix of the levels codes on its own."""
    video = random_video(40, 48, 64, seed=3)
    assert codec.compress_tokens(tokens).segments == codec.compress(video, 25.0).segments
    sampled = sample_finer_levels(codec, tokens, seed=9)
    back = codec.decompress_tokens(codec.compress_tokens(sampled))
    assert back.mask is None and all(np.array_equal(a, b) for a, b in zip(back.symbols, sampled.symbols, strict=True))
    preview = type(tokens)(tokens.symbols[:1], tokens.info)
    coded = codec.compress_tokens(preview)
    assert len(coded.segments) == 1
    assert np.array_equal(codec.decompress_tokens(coded).symbols[0], tokens.symbols[0])
    assert np.array_equal(codec.decompress(coded), codec.decode(tokens, k_max=0))


def test_a_rate_controlled_file_decodes_to_its_tokens_and_mask(codec):
    from mptvc_latents.ratecontrol import RateTarget

    video = random_video(64, 48, 64, seed=4)
    full = codec.compress(video, 25.0)
    budget = 8 * sum(full.level_bytes()[:2]) / (64 * 48 * 64)  # about the medium prefix's rate
    coded = codec.compress(video, 25.0, target=RateTarget(bpp=budget, best_effort=True))
    assert coded.rate is not None
    tokens = codec.decompress_tokens(coded)
    assert tokens.mask is not None and tokens.mask.shape == (tokens.symbols[0].shape[0], 3)
    assert np.array_equal(codec.decode(tokens), codec.decompress(coded))
