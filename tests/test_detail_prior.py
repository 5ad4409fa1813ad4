"""Detail priors (generation/detail.py, issue 19): a normalised frame-by-frame checkerboard
likelihood, what each pass may see (earlier frames and, in pass 2, its frame's anchors; never a
later frame or its own unrevealed symbols), seeded sampling window by window, training and
resuming on a store, and ``mptvc generate --finer``."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.data import LevelWindows, tokenize_fixed
from generation.detail import DetailConfig, DetailPrior, anchor_mask, load_detail_priors, window_schedule
from generation.sample import sample_finer
from generation.train import DetailTrainConfig, detail_config_for, train_detail
from mptvc_latents import cli
from mptvc_latents.codec import MPTVC
from tests._tiny import SAMPLE

TINY = dict(dim=16, depth=1, heads=2, radius=(1, 1, 1))


def tiny_detail(seed: int = 0, **overrides) -> DetailPrior:
    """A random tiny prior (the heads too, so its distributions are not uniform)."""
    torch.manual_seed(seed)
    prior = DetailPrior(DetailConfig(**{**TINY, "channel_hidden": 8, **overrides})).eval()
    torch.nn.init.normal_(prior.head.weight, std=0.5)
    torch.nn.init.normal_(prior.channel_out.weight, std=0.5)
    return prior


@pytest.fixture(scope="module")
def codec(one_torch_thread):
    return MPTVC.from_pretrained()


@pytest.fixture(scope="module")
def store(codec, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("detail") / "tiny.zarr"
    tokenize_fixed([SAMPLE], path, codec, size=(32, 48), max_frames=64)
    return path


def test_config_validates_at_construction():
    with pytest.raises(ValueError, match="finer level"):
        DetailConfig(level=0)
    with pytest.raises(ValueError, match="for each of the 2 coarser levels"):
        DetailConfig(level=2, coarser=((8, 4),))
    with pytest.raises(ValueError, match="window must be a positive integer"):
        DetailConfig(window=0)
    with pytest.raises(ValueError, match="divisible"):
        DetailConfig(dim=10, heads=4)
    config = DetailConfig.from_dict(DetailConfig(level=2, coarser=((8, 4), (8, 12))).to_dict())
    assert config.coarser == ((8, 4), (8, 12)) and config.coarser_channels == 16


def test_anchors_are_a_checkerboard_and_windows_tile_the_clip():
    a = anchor_mask(4, 5)
    assert int(a.sum()) == 10 and bool(a[0, 0])
    assert not (a[1:] & a[:-1]).any() and not (a[:, 1:] & a[:, :-1]).any()
    assert window_schedule(4, 4) == [(0, 4)]
    assert window_schedule(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="at least one token frame"):
        window_schedule(0, 4)


@torch.no_grad()
@pytest.mark.parametrize("channels,levels", [(1, 3), (2, 2)])
def test_the_likelihood_sums_to_one_over_every_clip(channels, levels):
    """Two frames of two positions (one anchor each): the probabilities of every clip sum to 1, with
    and without a frame before the window, one channel of 3 symbols or two channels of 2 (the MADE
    head orders them)."""
    prior = tiny_detail(fsq_levels=levels, channels=channels, coarser=((4, 2),), window=2)
    coarser = torch.randint(0, 4, (1, 2, 1, 2, 2))
    for before in (None, torch.randint(0, levels, (1, 1, 2, channels))):
        total = 0.0
        for values in itertools.product(range(levels), repeat=4 * channels):
            y = torch.tensor(values).view(1, 2, 1, 2, channels)
            total += 2.0 ** -float(prior(coarser, y, before).sum())
        assert total == pytest.approx(1.0, abs=1e-5)


@torch.no_grad()
def test_each_pass_sees_earlier_frames_and_its_frames_anchors_only():
    """The transformer's features of frame t' depend on earlier frames, and in pass 2 on its anchors;
    never on later frames or on its own frame's other symbols (the channel head, which reads the
    position's own earlier channels, is checked below)."""
    prior = tiny_detail(coarser=((8, 4),), channels=3, fsq_levels=5)
    coarser = torch.randint(0, 8, (2, 3, 4, 4, 4))
    y = torch.randint(0, 5, (2, 3, 4, 4, 3))
    anchors = anchor_mask(4, 4)
    for visible in (False, True):
        base = prior.features(coarser, y, None, visible)
        # a later frame (symbols and coarser levels) changes nothing in frames before it
        later = y.clone()
        later[:, 2] = (later[:, 2] + 1) % 5
        coarser_later = coarser.clone()
        coarser_later[:, 2] = (coarser_later[:, 2] + 3) % 8
        assert torch.equal(prior.features(coarser_later, later, None, visible)[:, :2], base[:, :2])
        # frame 1's own non-anchors are never seen by frame 1; its anchors only in pass 2
        own = y.clone()
        own[:, 1, ~anchors] = (own[:, 1, ~anchors] + 2) % 5
        assert torch.equal(prior.features(coarser, own, None, visible)[:, 1], base[:, 1])
        own = y.clone()
        own[:, 1, anchors] = (own[:, 1, anchors] + 2) % 5
        assert torch.equal(prior.features(coarser, own, None, visible)[:, 1], base[:, 1]) is (not visible)
        # the frame before is seen
        earlier = y.clone()
        earlier[:, 0] = (earlier[:, 0] + 1) % 5
        assert not torch.equal(prior.features(coarser, earlier, None, visible)[:, 1], base[:, 1])
    before = torch.randint(0, 5, (2, 4, 4, 3))
    assert not torch.equal(
        prior.features(coarser, y, before, False)[:, 0], prior.features(coarser, y, None, False)[:, 0]
    )
    mixed = prior.features(coarser, y, before, False, has_before=torch.tensor([True, False]))
    assert torch.equal(mixed[1], prior.features(coarser, y, None, False)[1])
    assert torch.equal(mixed[0], prior.features(coarser, y, before, False)[0])


@torch.no_grad()
def test_channel_c_reads_only_the_channels_before_it():
    prior = tiny_detail(coarser=((8, 4),), channels=4, fsq_levels=5)
    features = torch.randn(6, 16)
    y = torch.randint(0, 5, (6, 4))
    base = prior.channel_logits(features, y)
    for c in range(4):
        changed = y.clone()
        changed[:, c] = (changed[:, c] + 1) % 5
        out = prior.channel_logits(features, changed)
        assert torch.equal(out[:, : c + 1], base[:, : c + 1])  # channels 0..c do not read channel c
        if c < 3:
            assert not torch.equal(out[:, c + 1 :], base[:, c + 1 :])  # later ones do


def test_sampling_is_seeded_windowed_and_follows_the_model():
    prior = tiny_detail(coarser=((8, 4),), channels=3, fsq_levels=5, window=2)
    coarser = np.random.default_rng(0).integers(0, 8, (5, 3, 4, 4)).astype(np.uint8)
    a, b, c = prior.sample(coarser, seed=1), prior.sample(coarser, seed=1), prior.sample(coarser, seed=2)
    assert a.shape == (5, 3, 4, 3) and a.dtype == np.uint8 and int(a.max()) < 5
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.isfinite(prior.clip_bits(coarser, a))
    # a head that puts nearly all mass on symbol 4 of every channel draws it everywhere
    with torch.no_grad():
        prior.head.weight.zero_()
        prior.channel_out.weight.zero_()
        prior.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, 30.0]).repeat(3))
    assert (prior.sample(coarser, seed=3) == 4).all()
    with pytest.raises(ValueError, match=r"coarser must be \(batch, t', h', w', 4\)"):
        prior.sample(coarser[..., :2])
    with pytest.raises(ValueError, match="outside its channel's FSQ range"):
        prior.sample(coarser + 8)
    with pytest.raises(ValueError, match=r"y holds a symbol outside \[0, 5\)"):
        prior.clip_bits(coarser, np.full((5, 3, 4, 3), 5, np.uint8))


def test_a_drawn_clip_is_scored_in_the_order_it_was_drawn():
    """Sampling at a temperature near zero takes each symbol's mode; the mode of every symbol is then
    also its most likely value under ``forward`` (the scorer sees what the sampler saw)."""
    prior = tiny_detail(coarser=((8, 4),), channels=2, fsq_levels=5, window=2)
    coarser = np.random.default_rng(1).integers(0, 8, (3, 3, 4, 4)).astype(np.uint8)
    y = prior.sample(coarser, seed=0, temperature=1e-4)
    x, yy = torch.from_numpy(coarser).long()[None], torch.from_numpy(y).long()[None]
    with torch.no_grad():
        for start, stop in window_schedule(3, 2):
            before = yy[:, start - 1] if start > 0 else None
            for visible, scored in ((False, anchor_mask(3, 4)), (True, ~anchor_mask(3, 4))):
                logits = prior.logits(x[:, start:stop], yy[:, start:stop], before, visible)
                best = logits.argmax(-1)  # (1, t, H', W', C)
                assert torch.equal(best[:, :, scored], yy[:, start:stop][:, :, scored])


def test_training_lowers_the_loss_and_a_resumed_run_equals_an_uninterrupted_one(store, tmp_path):
    config = detail_config_for(store, 1, **TINY)
    assert config.coarser == ((8, 4),) and config.channels == 12 and config.codec_digest
    windows = LevelWindows(store, 1)
    coarser, y, y_before, has_before = windows.batch(8, config.window, 16, torch.Generator().manual_seed(0))
    assert coarser.shape[:4] == y.shape[:4] == (8, 4, 4, 6) and coarser.shape[-1] == 4 and y.shape[-1] == 12
    assert y_before.shape == (8, 4, 6, 12) and has_before.dtype == torch.bool
    assert (y_before[~has_before] == 0).all()
    train = DetailTrainConfig(steps=6, batch=2, crop=4, warmup=0, lr=3e-3, log_every=1, save_every=1)
    whole = train_detail(store, tmp_path / "whole", config, train)
    losses = [
        float(line.split('"bits_per_token": ')[1].split(",")[0]) for line in (tmp_path / "whole" / "log.jsonl").open()
    ]
    assert losses[-1] < losses[0] and losses[0] == pytest.approx(12 * math.log2(8), rel=0.05)
    train_detail(store, tmp_path / "split", config, train, max_seconds=0.0)  # stops after one step
    resumed = train_detail(store, tmp_path / "split", config, train)
    for (name, p), q in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    loaded = DetailPrior.from_pretrained(tmp_path / "whole" / "detail")
    assert loaded.config == config
    with pytest.raises(ValueError, match="finer level of this codec"):
        detail_config_for(store, 3)


def _save_pair(codec: MPTVC, folder: Path, digest: str | None = None) -> list[Path]:
    levels = codec.config.levels
    paths = []
    for k in (1, 2):
        config = DetailConfig(
            level=k,
            coarser=tuple((lv.fsq_levels, lv.latent_channels) for lv in levels[:k]),
            fsq_levels=levels[k].fsq_levels,
            channels=levels[k].latent_channels,
            codec_digest=codec.weights_digest() if digest is None else digest,
            **TINY,
        )
        torch.manual_seed(k)
        paths.append(folder / f"l{k}")
        DetailPrior(config).save_pretrained(paths[-1])
    return paths


def test_sample_finer_draws_each_level_from_its_detail_prior(codec, tmp_path):
    tokens = codec.encode(np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8), 25.0)
    priors = load_detail_priors(_save_pair(codec, tmp_path))
    full = sample_finer(codec, tokens, 3, seed=4, detail=priors)
    medium = sample_finer(codec, tokens, 2, seed=4, detail=priors)
    assert [s.shape for s in full.symbols] == [s.shape for s in tokens.symbols]
    assert np.array_equal(full.symbols[0], tokens.symbols[0]) and np.array_equal(medium.symbols[1], full.symbols[1])
    assert not np.array_equal(full.symbols[2], sample_finer(codec, tokens, 3, seed=5, detail=priors).symbols[2])
    assert codec.decode(full, k_max=2).shape == (16, 32, 32, 3)
    with pytest.raises(ValueError, match="another codec checkpoint"):
        sample_finer(codec, tokens, 3, detail=load_detail_priors(_save_pair(codec, tmp_path / "x", "0" * 64)))
    with pytest.raises(ValueError, match="No detail prior draws level 2"):
        sample_finer(codec, tokens, 3, detail={1: priors[1]})
    with pytest.raises(ValueError, match="Two detail priors draw level 1"):
        load_detail_priors([tmp_path / "l1", tmp_path / "l1"])


def test_generate_takes_detail_priors_or_the_context_models(codec, tmp_path, capsys):
    detail = [str(p) for p in _save_pair(codec, tmp_path)]
    base = ["generate", "--prior", "prior-l0-96x128", "--frames", "8", "--seed", "1", "--no-gif"]

    def generate(name: str, *extra: str) -> np.ndarray:
        assert cli.main([*base, "--out", str(tmp_path / f"{name}.npy"), *extra]) == 0
        return np.load(tmp_path / f"{name}.npy")

    ours, again = generate("a", "--detail", *detail), generate("b", "--detail", *detail)
    context = generate("c", "--finer", "context")
    assert ours.shape == context.shape == (8, 96, 128, 3)
    assert np.array_equal(ours, again) and not np.array_equal(ours, context)
    assert cli.main([*base, "--out", str(tmp_path / "d.npy"), "--finer", "context", "--detail", *detail]) != 0
    assert "only --finer detail uses" in capsys.readouterr().err


def test_the_generation_bench_compares_both_samplers(codec, tmp_path):
    """A smoke run of ``benchmarks/generation_bench.py`` on the sample clip with tiny detail priors."""
    import json

    from benchmarks import generation_bench

    detail = [str(p) for p in _save_pair(codec, tmp_path)]
    out = tmp_path / "levels.json"
    argv = [str(SAMPLE), "--size", "32", "32", "--max-frames", "16", "--seeds", "0", "--detail", *detail]
    assert generation_bench.main([*argv, "--out", str(out)]) == 0
    clip = next(iter(json.loads(out.read_text())["clips"].values()))
    assert len(clip["real"]["detail_bits"]) == 2 and len(clip["real"]["bits"]) == 3
    for finer in ("detail", "context"):
        (draw,) = clip["sampled"][finer]
        assert -1 <= draw["placement"] <= 1 and len(draw["psnr"]) == 3 and draw["seconds"] >= 0


def test_the_shipped_detail_priors_load_and_belong_to_the_shipped_codec(codec):
    from generation.sample import load_shipped_detail

    priors = load_shipped_detail()
    assert sorted(priors) == list(range(1, codec.num_levels))
    for k, prior in priors.items():
        level = codec.config.levels[k]
        assert prior.config.codec_digest == codec.weights_digest()
        assert (prior.config.channels, prior.config.fsq_levels) == (level.latent_channels, level.fsq_levels)
        assert prior.config.coarser == tuple((lv.fsq_levels, lv.latent_channels) for lv in codec.config.levels[:k])
