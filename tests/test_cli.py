"""The ``mptvc`` command line: encode -> info -> decode on the sample clip, the prefix property of
``truncate``, the original tool's flags, one-line errors without partial outputs, and --help.

A tiny random-weight codec is saved with ``save_pretrained`` and passed with ``--ckpt``; the
clip is 16 frames of the sample (with its hard cut) cropped to 56x40, so it pads in h and w.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mptvc_latents import cli
from mptvc_latents.files import atomic_output
from mptvc_latents.formats import container as bs
from mptvc_latents.pretrained import default_checkpoint_dir
from mptvc_latents.video import read_video, write_video
from tests._tiny import SAMPLE, tiny_config, tiny_model

K = 3


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def clip(work) -> Path:
    source = read_video(SAMPLE, max_frames=16, start=14)  # the sample's cut at frame 22 is frame 8 here
    write_video(work / "clip.mp4", source.frames[:, 40:80, 100:156], source.fps)
    return work / "clip.mp4"


@pytest.fixture(scope="module")
def compressed(model, clip):
    """What the library makes of the clip as the CLI reads it."""
    video = read_video(clip)
    return model.compress(video.frames, video.fps)


@pytest.fixture(scope="module")
def decoded(model, compressed) -> list[np.ndarray]:
    return [model.decompress(compressed, k) for k in range(K)]


@pytest.fixture(scope="module")
def encoded(clip, ckpt, work) -> Path:
    out = work / "clip.mptvc"
    assert cli.main(["encode", str(clip), str(out), "--ckpt", str(ckpt)]) == 0
    return out


def _run(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def _decode(path: Path, out: Path, ckpt: Path, *extra: str) -> np.ndarray:
    assert _run("decode", path, out, "--ckpt", ckpt, *extra) == 0
    return np.load(out)


# --------------------------------------------------------------------------- round trip


def test_encode_writes_exactly_the_library_bytes(model, compressed, encoded):
    assert encoded.read_bytes() == bs.write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
    assert len({int(s) for s in compressed.info.scene_ids}) == 2  # the cut survived the crop
    assert not list(encoded.parent.glob(".*.part*"))


def test_info_reports_levels_prefixes_shape_fps_and_digest(model, encoded, capsys):
    assert _run("info", encoded, "--json") == 0
    d = json.loads(capsys.readouterr().out)
    header = bs.parse_header(encoded.read_bytes())
    assert (d["width"], d["height"], d["frames"], d["fps"]) == (56, 40, 16, 25.0)
    assert d["digest"] == model.tables_digest() and d["levels_total"] == d["levels_complete"] == K
    assert [row["prefix_bytes"] for row in d["levels"]] == header.level_ends()
    assert d["levels"][-1]["prefix_bytes"] == d["file_bytes"] == encoded.stat().st_size
    assert d["levels"][0]["prefix_bpp"] == pytest.approx(8 * header.level_ends()[0] / (16 * 40 * 56))
    assert _run("info", encoded) == 0
    text = capsys.readouterr().out
    assert "56x40, 16 frames at 25 fps" in text and model.tables_digest() in text and "prefix bpp" in text


def test_decode_each_level_equals_the_library_decompress(encoded, ckpt, decoded, work):
    assert np.array_equal(_decode(encoded, work / "full.npy", ckpt), decoded[-1])
    for k in range(K):
        assert np.array_equal(_decode(encoded, work / f"k{k}.npy", ckpt, "--k-max", str(k)), decoded[k])
    assert not np.array_equal(decoded[0], decoded[-1])


def test_decode_writes_a_playable_video(encoded, ckpt, work):
    assert _run("decode", encoded, work / "out.mp4", "--ckpt", ckpt, "--k-max", "1") == 0
    video = read_video(work / "out.mp4")
    assert video.frames.shape == (16, 40, 56, 3) and video.fps == 25.0


def test_truncate_writes_the_prefix_which_decodes_like_k_max(encoded, ckpt, decoded, work):
    data = encoded.read_bytes()
    ends = bs.parse_header(data).level_ends()
    for k in range(K):
        out = work / f"prefix{k}.mptvc"
        assert _run("truncate", encoded, out, "--k-max", k) == 0
        assert out.read_bytes() == data[: ends[k]]
        assert np.array_equal(_decode(out, work / f"prefix{k}.npy", ckpt), decoded[k])


def test_the_original_flags_map_onto_the_positional_form(clip, ckpt, encoded, decoded, work):
    out = work / "flags.mptvc"
    assert _run("encode", "--input", clip, "--output", out, "--ckpt", ckpt, "--fp32") == 0
    assert out.read_bytes() == encoded.read_bytes()
    mixed = work / "mixed.mptvc"
    assert _run("encode", "--input", clip, mixed, "--ckpt", ckpt) == 0  # the positional fills OUTPUT
    assert mixed.read_bytes() == encoded.read_bytes()
    frames = work / "flags.npy"
    assert _run("decode", "--input", out, "--output", frames, "--ckpt", ckpt, "--k-max", "0") == 0
    assert np.array_equal(np.load(frames), decoded[0])


def test_bf16_encodes_a_file_the_same_checkpoint_decodes(clip, ckpt, model, work):
    out = work / "bf16.mptvc"
    assert _run("encode", clip, out, "--ckpt", ckpt, "--bf16") == 0
    stream, _, report = bs.read_mptvc(out, digest=model.tables_digest(), config=model.config.to_dict())
    assert report.levels_complete == K
    assert model.decompress(stream, 0).shape == (16, 40, 56, 3)


# --------------------------------------------------------------------------- errors


def _damaged(data: bytes, header, what: str) -> bytes:
    if what == "version":
        return data[:8] + b"\x09\x00" + data[10:]
    if what == "header":
        return data[:40] + bytes([data[40] ^ 4]) + data[41:]
    if what == "segment":
        at = header.level_ends()[0] + 3  # inside level 1, chunk 0
        return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
    if what == "cut":
        return data[:30]
    raise AssertionError(what)


@pytest.fixture(scope="module")
def other_ckpt(work) -> Path:
    import dataclasses

    levels = tiny_config().levels
    other = tiny_model(tiny_config(levels=levels[:2] + (dataclasses.replace(levels[2], fsq_levels=10),)))
    other.save_pretrained(work / "other")
    return work / "other"


@pytest.mark.parametrize(
    "case, words",
    [
        ("decode-not-mptvc", "is not an mptvc file"),
        ("decode-version", "version 9"),
        ("decode-header-crc", "header of the file"),
        ("decode-segment-crc", "level 1, chunk 0"),
        ("decode-truncated-header", "cut inside the mptvc header"),
        ("decode-wrong-checkpoint", "another checkpoint"),
        ("decode-missing-input", "does not exist"),
        ("decode-k-max", "out of range"),
        ("decode-bad-format", "Could not determine output format"),
        ("encode-unreadable-video", "could not be opened as a video"),
        ("encode-empty-video", "could not be opened as a video"),
        ("encode-missing-input", "does not exist"),
        ("encode-missing-checkpoint", "no checkpoint folder at"),
        ("encode-missing-folder", "output folder"),
        ("encode-no-output", "needs an OUTPUT"),
        ("info-not-mptvc", "is not an mptvc file"),
        ("truncate-k-max", "out of range"),
    ],
)
def test_errors_print_one_line_exit_non_zero_and_leave_no_output(
    case, words, clip, ckpt, other_ckpt, encoded, tmp_path, capsys
):
    data = encoded.read_bytes()
    header = bs.parse_header(data)
    src = tmp_path / "in.mptvc"
    out = tmp_path / "out.npy"
    command, _, what = case.partition("-")
    if command == "decode":
        src.write_bytes(
            {
                "version": lambda: _damaged(data, header, "version"),
                "header-crc": lambda: _damaged(data, header, "header"),
                "segment-crc": lambda: _damaged(data, header, "segment"),
                "truncated-header": lambda: _damaged(data, header, "cut"),
            }.get(what, lambda: data)()
        )
        if what == "not-mptvc":
            src = clip
        argv = ["decode", src, out, "--ckpt", other_ckpt if what == "wrong-checkpoint" else ckpt]
        if what == "missing-input":
            argv[1] = tmp_path / "nope.mptvc"
        if what == "k-max":
            argv += ["--k-max", "3"]
        if what == "bad-format":
            argv[2] = out = tmp_path / "out.xyz"
    elif command == "encode":
        out = tmp_path / "out.mptvc"
        source = tmp_path / "in.mp4"
        source.write_bytes(b"" if what == "empty-video" else b"this is not a video, just some text\n" * 10)
        argv = [
            "encode",
            clip if what in ("missing-checkpoint", "missing-folder", "no-output") else source,
            out,
            "--ckpt",
            ckpt,
        ]
        if what == "missing-input":
            argv[1] = tmp_path / "nope.mp4"
        if what == "missing-checkpoint":
            argv[4] = tmp_path / "no-such-ckpt"
        if what == "missing-folder":
            argv[2] = tmp_path / "no-such-folder" / "out.mptvc"
        if what == "no-output":
            del argv[2]
    elif command == "info":
        argv = ["info", clip]
    else:
        src.write_bytes(data[:-1])
        argv = ["truncate", src, tmp_path / "cut.mptvc", "--k-max", "2"]
    before = sorted(tmp_path.iterdir())
    capsys.readouterr()
    assert _run(*argv) != 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mptvc: error: "), captured.err
    assert words in lines[0] and "Traceback" not in captured.err
    assert sorted(tmp_path.iterdir()) == before  # no partial output, no temp file


def test_a_failing_writer_leaves_neither_temp_file_nor_damaged_target(encoded, ckpt, tmp_path, monkeypatch, capsys):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"precious")

    def half_written(writer, frames):
        writer.path.write_bytes(b"half a video")
        raise ValueError("The disk went away half way.")

    monkeypatch.setattr("mptvc_latents.video.FrameWriter.write", half_written)
    assert _run("decode", encoded, target, "--ckpt", ckpt, "--k-max", "0") == 2
    assert "disk went away" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"] and target.read_bytes() == b"precious"


def test_atomic_output_renames_on_success_and_removes_on_failure(tmp_path):
    with atomic_output(tmp_path / "a.bin") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".bin" and not tmp.exists()
        tmp.write_bytes(b"ok")
    assert (tmp_path / "a.bin").read_bytes() == b"ok"
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_real_process_prints_one_line_and_no_traceback(clip, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mptvc_latents.cli", "decode", str(clip), str(tmp_path / "x.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("mptvc: error: The file"), result.stderr
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- help and checkpoints


@pytest.mark.parametrize(
    "command, flags",
    [
        ([], ["encode", "decode", "info", "truncate", "train"]),
        (["encode"], ["INPUT", "OUTPUT", "--input", "--output", "--ckpt", "--fp32", "--bf16"]),
        (["decode"], ["--input", "--output", "--ckpt", "--k-max", "0 preview, 1 medium"]),
        (["info"], ["INPUT", "--json"]),
        (["truncate"], ["--k-max", "OUTPUT"]),
        (["train"], ["--run", "--preset"]),
    ],
)
def test_every_command_has_help(command, flags, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mptvc")
    for flag in flags:
        assert flag in out, flag


def test_from_pretrained_defaults_to_the_shipped_folder_and_explains_a_missing_one(ckpt, model, tmp_path):
    import mptvc_latents
    from mptvc_latents.codec import MPTVC

    assert default_checkpoint_dir() == Path(mptvc_latents.__file__).parent / "checkpoints" / "mptvc-cpu"
    with pytest.raises(ValueError, match="no checkpoint folder at .*config.json \\+ model.safetensors"):
        MPTVC.from_pretrained(tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"config": model.config.to_dict()}))
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="could not be loaded"):
        MPTVC.from_pretrained(tmp_path / "broken")
    loaded = MPTVC.from_pretrained(ckpt)
    assert not loaded.training and loaded.tables_digest() == model.tables_digest()
    assert MPTVC.from_pretrained().tables_digest() == MPTVC.from_pretrained(default_checkpoint_dir()).tables_digest()


class _Entry:
    """Stands in for an ``importlib.metadata.EntryPoint`` of the ``mptvc.commands`` group."""

    def __init__(self, name, value, target):
        self.name, self.value, self._target = name, value, target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugin_commands_are_added_and_a_broken_one_is_left_out(monkeypatch, caplog, capsys):
    import importlib.metadata

    ran = []

    def add_command(sub):
        p = sub.add_parser("hello", help="say hello")
        p.add_argument("--name", required=True)
        p.set_defaults(func=lambda args: ran.append(args.name))

    def add_failing(sub):
        p = sub.add_parser("fails", help="reject its input")
        p.set_defaults(func=lambda args: (_ for _ in ()).throw(ValueError("The input is bad.")))

    entries = [
        _Entry("hello", "pkg.cli:add_command", add_command),
        _Entry("broken", "missing.cli:add_command", ModuleNotFoundError("No module named 'missing'")),
        _Entry("fails", "pkg.cli:add_failing", add_failing),
    ]

    def fake_entry_points(group=None, **kw):
        return entries if group == cli.PLUGIN_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    with caplog.at_level("WARNING", logger="mptvc"):
        assert cli.main(["hello", "--name", "x"]) == 0
    assert ran == ["x"]
    assert any("'broken'" in r.getMessage() and "could not be loaded" in r.getMessage() for r in caplog.records)
    assert cli.main(["fails"]) == 2
    assert "mptvc: error: The input is bad." in capsys.readouterr().err


def test_installed_plugins_are_the_sibling_packages():
    from importlib.metadata import entry_points

    names = {e.name: e.value for e in entry_points(group=cli.PLUGIN_GROUP)}
    assert names == {"generate": "generation.cli:add_command", "heads": "heads.cli:add_command"}


def test_every_core_command_is_an_add_command_of_core_commands_and_plugins_follow():
    import argparse

    core = argparse.ArgumentParser().add_subparsers()
    for add_command in cli.CORE_COMMANDS:
        add_command(core)
    names = [
        "encode",
        "decode",
        "info",
        "truncate",
        "train",
        "export",
        "train-entropy",
        "tokenize",
        "detokenize",
        "eval",
    ]
    assert list(core.choices) == names
    (everything,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(everything.choices) == [*names, "generate", "prior-tokenize", "prior-train", "prior-eval", "heads"]


def test_train_flags_left_out_take_the_train_config_defaults(monkeypatch, tmp_path, capsys):
    import dataclasses

    import mptvc_latents.train as train

    made = []

    class Recorder:
        def __init__(self, config):
            made.append(config)

        def fit(self, progress):
            made.append(progress)

    monkeypatch.setattr(train, "Trainer", Recorder)
    assert cli.main(["train", "videos", "--run", "run"]) == 0
    assert made == [train.TrainConfig(sources=("videos",), run_dir="run"), True]
    made.clear()
    flags = ["--crop", "48", "--phase-steps", "1", "2", "3", "4", "--lr", "1e-3", "--init", "ckpt", "--no-progress"]
    assert cli.main(["train", "a", "b", "--run", "run", *flags]) == 0
    expected = dataclasses.replace(
        train.TrainConfig(sources=("a", "b"), run_dir="run"), crop=(48, 48), phase_steps=(1, 2, 3, 4), lr=1e-3
    )
    assert made == [dataclasses.replace(expected, init="ckpt"), False]
    assert cli.main(["train", "a", "--run", "run", "--batch", "0"]) == 2
    assert "TrainConfig.batch must be a positive integer, got 0." in capsys.readouterr().err


# --------------------------------------------------------------------------- awkward and long videos


def test_a_video_whose_size_changes_encodes_at_its_first_size(ckpt, tmp_path):
    """An H.264 stream re-coded at another size half way (as screen recordings do) encodes and
    decodes at the first size; a rotation that is no quarter turn is one line naming file and frame."""
    import av

    def h264(path, frames):
        with av.open(str(path), "w", format="h264") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    source = read_video(SAMPLE, max_frames=12).frames
    h264(tmp_path / "a.h264", np.ascontiguousarray(source[:5, 40:80, 100:156]))
    h264(tmp_path / "b.h264", np.ascontiguousarray(source[5:, 40:96, 100:180]))
    joined = tmp_path / "joined.h264"
    joined.write_bytes((tmp_path / "a.h264").read_bytes() + (tmp_path / "b.h264").read_bytes())
    assert _run("encode", joined, tmp_path / "j.mptvc", "--ckpt", ckpt) == 0
    assert _decode(tmp_path / "j.mptvc", tmp_path / "j.npy", ckpt).shape == (12, 40, 56, 3)


def test_a_tilted_video_is_one_line_naming_the_file_and_frame(ckpt, tmp_path, capsys):
    import av

    with av.open(str(tmp_path / "tilted.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(45)
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert _run("encode", tmp_path / "tilted.mp4", tmp_path / "t.mptvc", "--ckpt", ckpt) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Frame 0 of" in err and "tilted.mp4' asks to be displayed rotated by 45" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tilted.mp4"]  # no output, no spool left


def test_encode_and_decode_hold_a_chunk_at_a_time(encoded, clip, ckpt, model, work, monkeypatch):
    """The CLI feeds the codec the reader's chunks and writes each decoded chunk as it comes."""
    from mptvc_latents.video import FrameWriter

    writes = []
    write = FrameWriter.write
    monkeypatch.setattr(FrameWriter, "write", lambda self, frames: writes.append(len(frames)) or write(self, frames))
    frames = _decode(encoded, work / "chunked.npy", ckpt)
    assert writes == [8, 8] and frames.shape == (16, 40, 56, 3)
