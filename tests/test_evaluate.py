"""Evaluation of a tiny random-weight codec on an 8-frame 48x64 crop of the sample clip:
result structure, prefix sizes, the container hook, the report files and ``mptvc eval``."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mptvc_latents
from mptvc_latents.codec import MPTVC
from mptvc_latents.config import CodecConfig, HyperpriorConfig, LevelConfig
from mptvc_latents.eval.cli import add_command, default_clip_dirs
from mptvc_latents.eval.metrics import psnr_rgb, psnr_y
from mptvc_latents.eval.rd import collect_clips, estimated_container_bytes, evaluate, write_report
from mptvc_latents.formats.container import truncate_mptvc, write_mptvc
from mptvc_latents.video import read_video, write_video

SAMPLE = Path(mptvc_latents.__file__).parent / "assets" / "bikes_sample.mp4"
K = 3


def _model() -> MPTVC:
    """K=3 levels 16/16/32 wide, 2/3/4 latent channels of 8 FSQ levels, one block each way,
    chunks of 8 frames; ``to_pixels`` of every level perturbed so each level changes the picture."""
    hp = HyperpriorConfig(hyper_channels=4, hidden=16)
    levels = tuple(
        LevelConfig(dim=d, heads=1, latent_channels=c, fsq_levels=8, encoder_depth=1, decoder_depth=1, hyperprior=hp)
        for d, c in ((16, 2), (16, 3), (32, 4))
    )
    torch.manual_seed(0)
    model = MPTVC(CodecConfig(levels=levels, radius=(1, 1, 1), chunk_frames=8, name="tiny"))
    with torch.no_grad():
        for level in model.levels:
            level.g_s.to_pixels.weight.normal_(0.0, 0.02)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> MPTVC:
    return _model()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """A folder with one 8-frame 48x64 clip (near-lossless H.264 of a crop of the sample)."""
    folder = tmp_path_factory.mktemp("clips")
    frames = read_video(SAMPLE, max_frames=8).frames[:, 40:88, 100:164]
    write_video(folder / "crop.mp4", frames, fps=25.0, crf=12)
    return folder


@pytest.fixture(scope="module")
def result(model, clip_dir) -> dict:
    return evaluate(
        model, collect_clips([clip_dir]), max_frames=8, baselines=("libx264", "libx265"), curve_crfs=(24, 40)
    )


def test_result_has_every_prefix_with_growing_bytes_and_consistent_bpp(result):
    assert result["model"]["levels"] == K and result["settings"]["bytes_source"] == "mptvc"
    (clip,) = result["clips"]
    assert (clip["frames"], clip["height"], clip["width"]) == (8, 48, 64) and clip["name"].endswith("/crop.mp4")
    prefixes = clip["prefixes"]
    assert [p["k"] for p in prefixes] == [0, 1, 2] and [p["name"] for p in prefixes] == ["preview", "medium", "full"]
    sizes = [p["bytes"] for p in prefixes]
    assert 0 < sizes[0] < sizes[1] < sizes[2]
    assert all(p["payload_bytes"] < p["bytes"] for p in prefixes)  # the header is on top
    for p in prefixes:
        assert p["bpp"] == pytest.approx(8 * p["bytes"] / (8 * 48 * 64))
        assert np.isfinite(p["psnr_y"]) and np.isfinite(p["psnr_rgb"]) and p["decode_seconds"] >= 0
    assert clip["encode_seconds"] > 0
    assert result["mean"]["prefixes"][2]["bpp"] == prefixes[2]["bpp"]  # one clip: the mean is the clip


def test_baselines_are_matched_at_the_medium_and_full_rates(result):
    clip = result["clips"][0]
    for codec in ("libx264", "libx265"):
        entry = clip["baselines"][codec]
        assert [m["k"] for m in entry["matched"]] == [1, 2]
        for m in entry["matched"]:
            assert m["bpp"] == clip["prefixes"][m["k"]]["bpp"]
            if m["psnr_y"] is not None:  # a random-weight codec's rate may lie beyond CRF 0..51
                assert m["crf_lo"] <= m["crf_hi"]
                curve = {p["crf"]: p for p in entry["curve"]}
                assert curve[m["crf_lo"]]["bpp"] >= m["bpp"] >= curve[m["crf_hi"]]["bpp"]
        crfs = [p["crf"] for p in entry["curve"]]
        assert {24, 40} <= set(crfs) and crfs == sorted(crfs)
        assert len(result["mean"]["baselines"][codec]) == 2
    assert any(m["psnr_y"] is not None for c in clip["baselines"].values() for m in c["matched"])


def test_bytes_are_the_sizes_of_the_mptvc_prefix_files(model, clip_dir, result):
    frames = read_video(clip_dir / "crop.mp4").frames
    data = write_mptvc(model.compress(frames, 25.0), model.config.to_dict(), model.tables_digest())
    sizes = [p["bytes"] for p in result["clips"][0]["prefixes"]]
    assert sizes == [len(truncate_mptvc(data, k)) for k in range(K)] and sizes[-1] == len(data)


def test_the_container_hook_replaces_the_file_size(model, clip_dir, result):
    calls = []

    def container_bytes(compressed, k):
        calls.append(k)
        return sum(compressed.level_bytes()[: k + 1]) + 100

    hooked = evaluate(model, collect_clips([clip_dir]), baselines=(), container_bytes=container_bytes)
    assert hooked["settings"]["bytes_source"] == "custom" and calls == [0, 1, 2]
    assert hooked["clips"][0]["baselines"] == {} and hooked["mean"]["baselines"] == {}
    for ours, theirs in zip(hooked["clips"][0]["prefixes"], result["clips"][0]["prefixes"], strict=True):
        assert ours["bytes"] == theirs["payload_bytes"] + 100
    estimate = evaluate(model, collect_clips([clip_dir]), baselines=(), container_bytes=estimated_container_bytes)
    assert estimate["settings"]["bytes_source"] == "estimate"
    assert all(p["bytes"] > p["payload_bytes"] for p in estimate["clips"][0]["prefixes"])


def test_report_writes_json_markdown_and_a_plot(result, tmp_path):
    paths = write_report(result, tmp_path / "report")
    loaded = json.loads(paths["json"].read_text())
    assert [p["bytes"] for p in loaded["clips"][0]["prefixes"]] == [p["bytes"] for p in result["clips"][0]["prefixes"]]
    table = paths["markdown"].read_text()
    assert "| prefix | bpp | PSNR-Y (dB)" in table and "27.85" in table and "40.26" in table
    assert "x264 PSNR-Y" in table and "x265 PSNR-Y" in table and "crop.mp4" in table
    pytest.importorskip("matplotlib")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_infinite_psnr_is_written_as_null(result, tmp_path):
    copy = json.loads(json.dumps(result))
    copy["clips"][0]["prefixes"][0]["psnr_y"] = float("inf")
    paths = write_report(copy, tmp_path)
    assert json.loads(paths["json"].read_text())["clips"][0]["prefixes"][0]["psnr_y"] is None
    assert "| inf |" in paths["markdown"].read_text()


def test_collect_clips_and_bad_arguments(model, clip_dir, tmp_path):
    assert collect_clips([clip_dir, clip_dir / "crop.mp4"]) == [clip_dir / "crop.mp4"]  # each clip once
    with pytest.raises(ValueError, match="no such file or folder"):
        collect_clips([tmp_path / "nowhere"])
    with pytest.raises(ValueError, match="no video files"):
        collect_clips([tmp_path])
    with pytest.raises(ValueError, match="no clips"):
        evaluate(model, [])
    with pytest.raises(ValueError, match="0..2"):
        evaluate(model, [clip_dir / "crop.mp4"], matched_prefixes=(3,))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mptvc")
    add_command(parser.add_subparsers(dest="command", required=True))
    return parser


def test_mptvc_eval_writes_the_report_of_a_checkpoint(model, clip_dir, tmp_path, capsys):
    model.save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "out"
    args = _parser().parse_args(
        [
            "eval",
            str(clip_dir),
            "--ckpt",
            str(tmp_path / "ckpt"),
            "--max-frames",
            "8",
            "--out",
            str(out),
            "--no-baselines",
        ]
    )
    assert args.clips == [str(clip_dir)] and args.max_frames == 8 and args.no_baselines
    args.func(args)
    assert {"eval.json", "eval.md"} <= {p.name for p in out.iterdir()}
    assert "| 2 full |" in capsys.readouterr().out
    assert json.loads((out / "eval.json").read_text())["model"]["checkpoint"] == str(tmp_path / "ckpt")


def test_mptvc_eval_without_clips_names_the_missing_default_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MPTVC_DATA_DIR", str(tmp_path))
    assert default_clip_dirs() == [tmp_path / "val"]
    args = _parser().parse_args(["eval", "--ckpt", str(tmp_path)])
    with pytest.raises(ValueError, match="MPTVC_DATA_DIR"):
        args.func(args)
    with pytest.raises(SystemExit):
        _parser().parse_args(["eval", "--max-frames", "0"])


def test_a_clip_is_measured_a_chunk_at_a_time_with_the_whole_clips_numbers(model, tmp_path):
    frames = read_video(SAMPLE, max_frames=20, start=14).frames[:, 40:88, 100:164]  # 3 chunks, the cut at 8
    write_video(tmp_path / "long.mp4", frames, fps=25.0, crf=12)
    source = read_video(tmp_path / "long.mp4").frames
    (clip,) = evaluate(model, [tmp_path / "long.mp4"], baselines=())["clips"]
    compressed = model.compress(source, 25.0)
    assert clip["frames"] == 20
    for p in clip["prefixes"]:
        decoded = model.decompress(compressed, p["k"])
        assert p["psnr_y"] == psnr_y(source, decoded) and p["psnr_rgb"] == psnr_rgb(source, decoded)
        assert p["payload_bytes"] == sum(compressed.level_bytes()[: p["k"] + 1])
