"""``mptvc generate`` end to end with a tiny prior of the shipped codec's tokens: a decodable mp4 and
GIF of the requested frames, seeds that reproduce, one-line errors that leave no output behind."""

from pathlib import Path

import numpy as np
import pytest
import torch

from generation.model import PriorConfig, TokenPrior
from mptvc_latents import cli
from mptvc_latents.codec import MPTVC
from mptvc_latents.video import read_video


@pytest.fixture(scope="module")
def prior_dir(tmp_path_factory, one_torch_thread) -> Path:
    digest = MPTVC.from_pretrained().weights_digest()
    torch.manual_seed(0)
    config = PriorConfig(
        grid=(2, 4, 4), frame_size=(32, 32), fps=10.0, codec_digest=digest, dim=32, depth=1, heads=2, mlp_dim=64
    )
    path = tmp_path_factory.mktemp("gen-cli") / "prior"
    TokenPrior(config).save_pretrained(path)
    return path


def test_generate_writes_a_decodable_mp4_and_gif_with_the_requested_frames(prior_dir, tmp_path):
    out = tmp_path / "sample.mp4"
    rc = cli.main(
        [
            "generate",
            "--prior",
            str(prior_dir),
            "--out",
            str(out),
            "--frames",
            "12",
            "--seed",
            "3",
            "--top-k",
            "20",
            "--temperature",
            "0.9",
        ]
    )
    assert rc == 0
    video, gif = read_video(out), read_video(tmp_path / "sample.gif")
    assert video.frames.shape == (12, 32, 32, 3) and gif.frames.shape == (12, 32, 32, 3)
    assert video.fps == pytest.approx(10.0) and gif.fps == pytest.approx(10.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.gif", "sample.mp4"]  # no temp files left


def test_a_fixed_seed_reproduces_the_tokens_and_the_frames(prior_dir, tmp_path):
    runs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        rc = cli.main(
            [
                "generate",
                "--prior",
                str(prior_dir),
                "--out",
                str(tmp_path / f"{name}.npy"),
                "--no-gif",
                "--tokens",
                str(tmp_path / f"{name}.tokens.npy"),
                "--frames",
                "8",
                "--seed",
                str(seed),
            ]
        )
        assert rc == 0
        runs.append((np.load(tmp_path / f"{name}.tokens.npy"), np.load(tmp_path / f"{name}.npy")))
    (ta, va), (tb, vb), (tc, _) = runs
    assert ta.shape == (2, 4, 4, 4) and ta.dtype == np.uint8
    assert np.array_equal(ta, tb) and np.array_equal(va, vb) and not np.array_equal(ta, tc)
    assert va.shape == (8, 32, 32, 3)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frames", "0"], "frames must be a positive"),
        (["--temperature", "0"], "temperature must be a positive"),
        (["--top-k", "-2"], "top_k must be 0"),
    ],
)
def test_bad_settings_print_one_line_and_write_nothing(prior_dir, tmp_path, capsys, extra, message):
    rc = cli.main(["generate", "--prior", str(prior_dir), "--out", str(tmp_path / "s.mp4"), *extra])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mptvc: error:") and message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_prior_or_a_prior_of_another_codec_is_refused(prior_dir, tmp_path, capsys):
    assert cli.main(["generate", "--prior", str(tmp_path / "nope"), "--out", str(tmp_path / "s.mp4")]) == 2
    assert "neither a folder nor a shipped prior" in capsys.readouterr().err
    other = tmp_path / "other"
    TokenPrior(
        PriorConfig(grid=(2, 4, 4), codec_digest="0" * 64, dim=32, depth=1, heads=2, mlp_dim=64)
    ).save_pretrained(other)
    assert cli.main(["generate", "--prior", str(other), "--out", str(tmp_path / "s.mp4")]) == 2
    assert "another codec checkpoint" in capsys.readouterr().err
    assert cli.main(["generate", "--prior", str(prior_dir), "--out", str(tmp_path / "x.gif")]) == 2
    assert "both be written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_the_commands_are_registered_with_mptvc(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in ("generate", "prior-tokenize", "prior-train", "prior-eval"))


def test_prior_train_refuses_a_missing_store_and_unknown_excluded_clips(tmp_path, capsys):
    assert cli.main(["prior-train", str(tmp_path / "none.zarr"), "--run", str(tmp_path / "run")]) == 2
    assert "no token store" in capsys.readouterr().err
    from generation.data import tokenize_fixed
    from tests._tiny import SAMPLE

    store = tmp_path / "s.zarr"
    tokenize_fixed([SAMPLE], store, MPTVC.from_pretrained(), size=(32, 32), max_frames=16)
    rc = cli.main(["prior-train", str(store), "--run", str(tmp_path / "run"), "--exclude", "not-a-clip"])
    assert rc == 2 and "does not hold" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_demo_codes_the_sample_with_the_shipped_prior_and_writes_a_sample(tmp_path, one_torch_thread):
    from generation.demo import SAMPLE, run

    # The demo's own length (64 frames): over 768 tokens (16 frames) the coded stream's fixed header
    # (~95 bytes, ~1 bit a token) can eat the prior's margin over the codec's context model.
    r = run(SAMPLE, tmp_path, seed=0, max_frames=64)  # raises unless the prior's stream decodes back exactly
    assert r["frames"] == 64 and r["tokens"] == 4 * 12 * 64
    assert r["prior_coded"] < r["codec"] < 12.5  # the prior beats the codec's own coder on this clip's level 0
    assert r["prior_ideal"] - 0.5 < r["prior_coded"] < r["prior_ideal"] + 1.0
    assert read_video(tmp_path / "prior_sample.mp4").frames.shape == (16, 96, 128, 3)
    assert (tmp_path / "prior_sample.gif").is_file()


def test_prior_train_flags_left_out_take_the_defaults_of_the_configs(tmp_path, monkeypatch):
    import generation.train as train

    calls = {}

    def prior_config_for(store, window=None, **shape):  # the signature given_flags reads
        calls["shape"] = {"window": window, **shape}

    monkeypatch.setattr(train, "prior_config_for", prior_config_for)
    monkeypatch.setattr(train, "train_prior", lambda store, run, prior, config, **kw: calls.setdefault("train", config))
    (tmp_path / "s.zarr").mkdir()
    base = ["prior-train", str(tmp_path / "s.zarr"), "--run", str(tmp_path / "run")]
    assert cli.main(base) == 0
    assert calls == {"shape": {"window": None}, "train": train.TrainConfig()}
    calls.clear()
    assert cli.main([*base, "--window", "2", "--dim", "64", "--steps", "9", "--keep-every", "3"]) == 0
    assert calls == {
        "shape": {"window": 2, "dim": 64, "mlp_dim": 192},
        "train": train.TrainConfig(steps=9, keep_every=3),
    }


def test_prior_train_level_k_trains_a_detail_prior_with_its_own_defaults(tmp_path, monkeypatch, capsys):
    import generation.train as train

    calls = {}

    def detail_config_for(store, level, **shape):  # the signature given_flags reads
        calls["config"] = {"level": level, **shape}

    monkeypatch.setattr(train, "detail_config_for", detail_config_for)
    monkeypatch.setattr(
        train, "train_detail", lambda store, run, detail, config, **kw: calls.setdefault("train", config)
    )
    (tmp_path / "s.zarr").mkdir()
    base = ["prior-train", str(tmp_path / "s.zarr"), "--run", str(tmp_path / "run")]
    assert cli.main([*base, "--level", "2"]) == 0
    assert calls == {"config": {"level": 2}, "train": train.DetailTrainConfig()}
    calls.clear()
    assert cli.main([*base, "--level", "1", "--dim", "32", "--window", "3", "--crop", "8", "--steps", "5"]) == 0
    assert calls == {
        "config": {"level": 1, "dim": 32, "window": 3},
        "train": train.DetailTrainConfig(crop=8, steps=5),
    }
    assert cli.main([*base, "--crop", "8"]) != 0
    assert "--crop is a flag of the detail priors" in capsys.readouterr().err
