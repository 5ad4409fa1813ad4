"""The causal variant (issue 16): temporal attention over the past only, tokens final as their frames
arrive, streaming encoder and decoder equal to the offline codec bit for bit on any split of the input,
causal shot cuts, the raw rgb24 command line, and the shipped causal checkpoint."""

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mptvc_latents.causal import (
    CausalDecoder,
    CausalEncoder,
    StreamStep,
    TokenFrame,
    decode_raw_stream,
    encode_raw_stream,
    parse_size,
)
from mptvc_latents.codec import MPTVC
from mptvc_latents.config import AttentionConfig, CodecConfig, ContextConfig
from mptvc_latents.formats.container import read_mptvc
from mptvc_latents.formats.spool import open_mptvc
from mptvc_latents.layers.attention import AxialNeighborhoodAttention, neighborhood_attention
from mptvc_latents.presets import causal_config, preset
from mptvc_latents.pretrained import causal_checkpoint_dir, default_checkpoint_dir
from mptvc_latents.scenes import CausalSceneCutStream, detect_scene_cuts
from mptvc_latents.video import read_video
from tests._tiny import DATA, SAMPLE, random_video, tiny_config, tiny_model

TRAIN = DATA / "train"


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread: the machine is shared."""


def _splits(total: int, seed: int) -> list[int]:
    """Random push sizes (1..13 frames) that add up to ``total``."""
    rng, sizes = np.random.default_rng(seed), []
    while sum(sizes) < total:
        sizes.append(min(int(rng.integers(1, 14)), total - sum(sizes)))
    return sizes


def _stream(model: MPTVC, video: np.ndarray, sizes: list[int], fps: float = 25.0, tokens_per_pass: int = 1):
    """Push ``video`` in pieces of ``sizes``; the token frames, packets and the encoder."""
    encoder, steps, start = CausalEncoder(model, fps, tokens_per_pass=tokens_per_pass), [], 0
    for n in sizes:
        steps.append(encoder.push(video[start : start + n]))
        start += n
    steps.append(encoder.finish())
    return [t for s in steps for t in s.tokens], [p for s in steps for p in s.packets], encoder


def _check_equal(model: MPTVC, video: np.ndarray, sizes: list[int], tokens_per_pass: int = 1) -> None:
    tokens = model.encode(video, 25.0)
    compressed = model.compress(video, 25.0)
    frames, packets, encoder = _stream(model, video, sizes, tokens_per_pass=tokens_per_pass)
    for k in range(model.num_levels):
        np.testing.assert_array_equal(np.stack([f.symbols[k] for f in frames]), tokens.symbols[k])
        assert [p.segments[k] for p in packets] == compressed.segments[k]
    info = encoder.info
    assert (info.frames, info.height, info.width, info.padding) == (
        compressed.info.frames,
        compressed.info.height,
        compressed.info.width,
        compressed.info.padding,
    )
    np.testing.assert_array_equal(info.scene_ids, compressed.info.scene_ids)


# --------------------------------------------------------------------------- attention and config


# The masked-matmul path (8), and at inference SDPA (>= 12 tokens); with probabilities, the
# masked matmuls (8) and the shifted views (> 32).
@pytest.mark.parametrize("length", [8, 40])
def test_causal_attention_ignores_the_future_bit_for_bit(length):
    torch.manual_seed(0)
    attention = AxialNeighborhoodAttention(AttentionConfig(dim=32, heads=2, radius=(2, 1, 1), causal=True)).eval()
    x = torch.randn(1, length, 3, 4, 32)
    t_pos = torch.arange(length, dtype=torch.float64)
    changed = x.clone()
    changed[:, length // 2 :] = torch.randn_like(changed[:, length // 2 :]) * 5
    with torch.no_grad():
        for return_probs in (False, True):  # the two paths (inference, analysis) each on its own
            out, out_changed = (attention(v, "t", t_pos, return_probs=return_probs) for v in (x, changed))
            if return_probs:
                (out, probs), (out_changed, _) = out, out_changed
            assert torch.equal(out[:, : length // 2], out_changed[:, : length // 2])
            assert not torch.equal(out[:, length // 2 :], out_changed[:, length // 2 :])
    assert (probs[..., 3:] == 0).all()  # slots of later keys (offsets +1, +2)
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


def test_noncausal_attention_sees_the_future():
    torch.manual_seed(0)
    attention = AxialNeighborhoodAttention(AttentionConfig(dim=32, heads=2, radius=(2, 1, 1))).eval()
    x = torch.randn(1, 8, 3, 4, 32)
    changed = x.clone()
    changed[:, 5:] += 1.0
    t_pos = torch.arange(8, dtype=torch.float64)
    with torch.no_grad():
        assert not torch.equal(attention(x, "t", t_pos)[:, 4], attention(changed, "t", t_pos)[:, 4])


def test_both_attention_paths_agree_when_causal():
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 3, 20, 8) for _ in range(3))
    dense, probs_dense = neighborhood_attention(q, k, v, 3, causal=True)
    # Forcing the shifted-view path: a copy with the dense limit lowered.
    import mptvc_latents.layers.attention as attention_module

    limit = attention_module.DENSE_MAX_LENGTH
    attention_module.DENSE_MAX_LENGTH = 4
    try:
        shifted, probs_shifted = neighborhood_attention(q, k, v, 3, causal=True)
    finally:
        attention_module.DENSE_MAX_LENGTH = limit
    torch.testing.assert_close(dense, shifted, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(probs_dense, probs_shifted, atol=1e-6, rtol=1e-5)


def test_config_flag_validated_recorded_and_left_out_when_false():
    with pytest.raises(ValueError, match="CodecConfig.causal must be true or false"):
        dataclasses.replace(preset("mptvc-cpu"), causal=1)
    with pytest.raises(ValueError, match="AttentionConfig.causal must be true or false"):
        AttentionConfig(dim=32, heads=2, causal="yes")
    assert "causal" not in preset("mptvc-cpu").to_dict()  # files and digests of the non-causal codec unchanged
    config = preset("mptvc-cpu-causal")
    assert config.causal and config.name == "mptvc-cpu-causal"
    assert config.to_dict()["causal"] is True
    assert CodecConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.transformer(0, "encoder").block.attention.causal
    assert causal_config(preset("mptvc-cpu")) == config
    assert preset("mptvc-full-causal").causal


# --------------------------------------------------------------------------- tokens depend on the past only


def test_token_frames_never_depend_on_later_frames():
    model = tiny_model(tiny_config(causal=True, chunk_frames=16))
    video = random_video(32, 32, 48, seed=1)
    changed = video.copy()
    changed[13:] = random_video(19, 32, 48, seed=2)
    a, b = model.encode(video), model.encode(changed)
    for k in range(3):
        np.testing.assert_array_equal(a.symbols[k][:3], b.symbols[k][:3])  # token frames 0..2: frames 0..11
        assert not np.array_equal(a.symbols[k][3:], b.symbols[k][3:])
    # a prefix coded alone gives the same tokens (the end of a video does not reach back)
    prefix = model.encode(video[:12])
    for k in range(3):
        np.testing.assert_array_equal(prefix.symbols[k][:3], a.symbols[k][:3])


# --------------------------------------------------------------------------- streaming equals offline


@pytest.mark.parametrize("context", [None, ContextConfig(intra_period=2)])
def test_stream_encoder_equals_offline_on_any_split(context):
    model = tiny_model(tiny_config(causal=True, chunk_frames=16, context=context))
    video = random_video(45, 40, 56, seed=3)
    for sizes in (_splits(45, 0), _splits(45, 1), [1] * 45, [45], [16, 16, 13], [4] * 11 + [1]):
        _check_equal(model, video, sizes)
    for tokens_per_pass in (2, 3, 4):
        _check_equal(model, video, _splits(45, tokens_per_pass), tokens_per_pass)


def test_tokens_per_pass_batches_the_passes():
    model = tiny_model(tiny_config(causal=True, chunk_frames=32))
    encoder = CausalEncoder(model, 25.0, tokens_per_pass=3)
    counts = [len(encoder.push(frame).tokens) for frame in random_video(32, 16, 16, seed=9)]
    assert [i for i, n in enumerate(counts) if n] == [11, 23, 31] and sum(counts) == 8
    with pytest.raises(ValueError, match="tokens_per_pass must be an integer from 1"):
        CausalEncoder(model, 25.0, tokens_per_pass=9)


def test_stream_encoder_emits_each_token_frame_once_its_frames_arrive():
    model = tiny_model(tiny_config(causal=True, chunk_frames=16))
    encoder = CausalEncoder(model, 25.0)
    video = random_video(20, 32, 32, seed=4)
    for t, frame in enumerate(video):
        step = encoder.push(frame)  # one frame (H, W, 3) at a time
        assert [f.index for f in step.tokens] == ([t // 4] if t % 4 == 3 else [])
        assert [p.index for p in step.packets] == ([t // 16] if t % 16 == 15 else [])
    last = encoder.finish()  # 20 frames padded to 24: token frame 5 is end padding alone
    assert [(f.index, f.frames) for f in last.tokens] == [(5, 0)]
    assert [p.index for p in last.packets] == [1]


def test_stream_decoder_equals_offline_decode_per_token_frame_and_per_packet():
    model = tiny_model(tiny_config(causal=True, chunk_frames=16, context=ContextConfig(intra_period=2)))
    video = random_video(45, 40, 56, seed=5)
    frames, packets, _ = _stream(model, video, _splits(45, 2))
    compressed = model.compress(video)
    tokens = model.encode(video)
    full = model.decompress(compressed)
    decoder = CausalDecoder(model, 40, 56)
    out = [decoder.push(f) for f in frames]
    assert [len(o) for o in out] == [f.frames for f in frames]
    np.testing.assert_array_equal(np.concatenate(out), full)
    decoder = CausalDecoder(model, 40, 56)
    np.testing.assert_array_equal(np.concatenate([decoder.push_packet(p) for p in packets]), full)
    for k_max in (0, 1):
        decoder = CausalDecoder(model, 40, 56, k_max=k_max)
        out = [decoder.push(frames[i : i + 3]) for i in range(0, len(frames), 3)]
        np.testing.assert_array_equal(np.concatenate(out), model.decode(tokens, k_max=k_max))


def test_stream_memory_is_one_chunk():
    model = tiny_model(tiny_config(causal=True, chunk_frames=16))
    encoder = CausalEncoder(model, 25.0)
    for frame in random_video(70, 16, 16, seed=6):
        encoder.push(frame)
        assert encoder._chunk is not None and encoder._chunk.shape[2] == 16
        assert all(len(s) <= 4 for s in encoder._symbols)


def test_stream_errors_are_sentences():
    noncausal = tiny_model()
    with pytest.raises(ValueError, match="needs a causal checkpoint"):
        CausalEncoder(noncausal)
    with pytest.raises(ValueError, match="needs a causal checkpoint"):
        CausalDecoder(noncausal, 16, 16)
    model = tiny_model(tiny_config(causal=True))
    encoder = CausalEncoder(model)
    with pytest.raises(ValueError, match="The stream is empty"):
        encoder.finish()
    encoder.push(random_video(3, 16, 16))
    with pytest.raises(ValueError, match="every frame of a stream must have one size"):
        encoder.push(random_video(1, 16, 32))
    with pytest.raises(ValueError, match="uint8 of shape"):
        encoder.push(np.zeros((2, 16, 16, 3), np.float32))
    encoder.finish()
    with pytest.raises(ValueError, match="finished"):
        encoder.push(random_video(1, 16, 16))
    decoder = CausalDecoder(model, 16, 16)
    with pytest.raises(ValueError, match="decoded in order"):
        decoder.push(TokenFrame(1, 4, 4, 0, [np.zeros((2, 2, c), np.uint8) for c in (2, 3, 4)]))
    with pytest.raises(ValueError, match="expected"):
        decoder.push(TokenFrame(0, 0, 4, 0, [np.zeros((3, 2, c), np.uint8) for c in (2, 3, 4)]))
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        parse_size("640-360")
    assert parse_size("640x360") == (640, 360)
    assert isinstance(StreamStep(), StreamStep)


# --------------------------------------------------------------------------- shot cuts without lookahead


def test_causal_scene_cuts_are_final_at_once_and_found():
    rng = np.random.default_rng(0)
    a = np.repeat(rng.integers(0, 80, (1, 24, 32, 3), dtype=np.uint8), 20, axis=0)
    b = np.repeat(rng.integers(170, 255, (1, 24, 32, 3), dtype=np.uint8), 20, axis=0)
    video = np.concatenate([a, b])
    video = np.clip(video.astype(int) + rng.integers(-3, 4, video.shape), 0, 255).astype(np.uint8)
    stream = CausalSceneCutStream()
    ids = []
    for frame in video:
        stream.push(frame[None])
        assert stream.settled == stream.frames  # no lookahead: every id is final at once
        ids.append(stream.scene_ids(stream.frames - 1, stream.frames)[0])
    assert ids == [0] * 20 + [1] * 20
    np.testing.assert_array_equal(detect_scene_cuts(video, causal=True), ids)


# --------------------------------------------------------------------------- raw rgb24 streams and the CLI


@pytest.fixture()
def tiny_causal_ckpt(tmp_path) -> Path:
    model = tiny_model(tiny_config(causal=True, chunk_frames=16, context=ContextConfig(intra_period=2)))
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_raw_stream_round_trip_and_interrupted_input(tmp_path, tiny_causal_ckpt):
    model = MPTVC.from_pretrained(tiny_causal_ckpt)
    video = random_video(23, 24, 40, seed=7)
    raw = video.tobytes()
    info, size = encode_raw_stream(model, io.BytesIO(raw), (40, 24), 30.0, tmp_path / "a.mptvc")
    assert (info.frames, info.width, info.height, info.fps) == (23, 40, 24, 30.0)
    assert (tmp_path / "a.mptvc").read_bytes() == _written(model, video, 30.0)
    # the input ends inside frame 23: the 23 complete frames are written, then the error says so
    cut = raw + video[0].tobytes()[:100]
    with pytest.raises(ValueError, match=r"ended inside frame 23: 100 of its 2880 bytes .* 23 complete frames"):
        encode_raw_stream(model, io.BytesIO(cut), (40, 24), 30.0, tmp_path / "b.mptvc")
    assert (tmp_path / "b.mptvc").read_bytes() == (tmp_path / "a.mptvc").read_bytes()
    with pytest.raises(ValueError, match="no complete 40x24 rgb24 frame"):
        encode_raw_stream(model, io.BytesIO(raw[:50]), (40, 24), 30.0, tmp_path / "c.mptvc")
    assert not (tmp_path / "c.mptvc").exists()
    out = io.BytesIO()
    stream, _, _ = open_mptvc(tmp_path / "a.mptvc")
    assert decode_raw_stream(model, stream, out, 2) == 23
    decoded = np.frombuffer(out.getvalue(), np.uint8).reshape(23, 24, 40, 3)
    np.testing.assert_array_equal(decoded, model.decompress(read_mptvc((tmp_path / "a.mptvc").read_bytes())[0]))


def _written(model: MPTVC, video: np.ndarray, fps: float) -> bytes:
    from mptvc_latents.formats.container import write_mptvc

    return write_mptvc(model.compress(video, fps), model.config.to_dict(), model.tables_digest())


def _mptvc(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mptvc_latents.cli", *args], input=stdin, capture_output=True, timeout=600
    )


def test_cli_stream_encode_from_stdin_and_decode_to_stdout(tmp_path, tiny_causal_ckpt):
    model = MPTVC.from_pretrained(tiny_causal_ckpt)
    video = random_video(21, 24, 40, seed=8)
    out = tmp_path / "live.mptvc"
    ckpt = ["--ckpt", str(tiny_causal_ckpt)]
    done = _mptvc("encode", "--stream", "--size", "40x24", "--fps", "30", "-", str(out), *ckpt, stdin=video.tobytes())
    assert done.returncode == 0, done.stderr.decode()
    assert out.read_bytes() == _written(model, video, 30.0)
    done = _mptvc("decode", "--stream", str(out), "-", *ckpt)
    assert done.returncode == 0, done.stderr.decode()
    decoded = np.frombuffer(done.stdout, np.uint8).reshape(21, 24, 40, 3)
    np.testing.assert_array_equal(decoded, model.decompress(read_mptvc(out.read_bytes())[0]))
    # the input ends mid-frame: one line on stderr, a non-zero exit, the complete frames in a valid file
    cut = _mptvc("encode", "--stream", "--size", "40x24", "--fps", "30", "-", str(tmp_path / "cut.mptvc"), *ckpt,
                 stdin=video.tobytes()[: 20 * 2880 + 7])  # fmt: skip
    assert cut.returncode != 0
    assert "ended inside frame 20: 7 of its 2880 bytes" in cut.stderr.decode()
    assert (tmp_path / "cut.mptvc").read_bytes() == _written(model, video[:20], 30.0)
    missing = _mptvc("encode", "--stream", "-", str(tmp_path / "x.mptvc"), *ckpt, stdin=b"")
    assert missing.returncode != 0 and "--size WxH and --fps" in missing.stderr.decode()


# --------------------------------------------------------------------------- the shipped causal checkpoint


@pytest.fixture(scope="module")
def shipped() -> MPTVC:
    if not (causal_checkpoint_dir() / "model.safetensors").is_file():
        pytest.fail(f"The causal checkpoint {causal_checkpoint_dir()} is missing.")
    return MPTVC.from_pretrained(causal_checkpoint_dir()).eval()


def test_shipped_causal_checkpoint_records_its_variant(shipped):
    assert shipped.config.causal and shipped.config.name == "mptvc-cpu-causal"
    base = MPTVC.from_pretrained(default_checkpoint_dir())
    assert dataclasses.replace(shipped.config, causal=False, name="mptvc-cpu") == base.config
    assert shipped.weights_digest() != base.weights_digest()
    card = json.loads((causal_checkpoint_dir() / "training.json").read_text())
    assert card["train_config"]["causal"] is True


@pytest.mark.parametrize("clip", ["Breakthrough_PySceneDetect/testvideo.mp4", "Zulko_moviepy"])
def test_shipped_stream_equals_offline_on_real_clips(shipped, clip):
    path = TRAIN / clip
    if not path.exists():
        pytest.skip(f"Real data not present at {DATA}; this check needs the shared data set.")
    if path.is_dir():
        path = sorted(p for p in path.rglob("*") if p.suffix in (".mp4", ".mkv", ".avi", ".webm", ".gif"))[0]
    video = np.ascontiguousarray(read_video(path, max_frames=37).frames[:, :96, :160])  # 2 chunks, the last padded
    _check_equal(shipped, video, _splits(len(video), 0))
    frames, _, _ = _stream(shipped, video, [len(video)])
    decoder = CausalDecoder(shipped, *video.shape[1:3])
    out = np.concatenate([decoder.push(f) for f in frames])
    np.testing.assert_array_equal(out, shipped.decompress(shipped.compress(video)))


def test_shipped_sample_clip_stream_with_a_cut(shipped):
    video = np.ascontiguousarray(read_video(SAMPLE, max_frames=40).frames[:, :, :200])  # the hard cut at frame 22
    _check_equal(shipped, video, _splits(len(video), 5))
    assert detect_scene_cuts(video, causal=True).max() >= 1


# --------------------------------------------------------------------------- stores, datasets: the same shapes


def test_token_store_records_the_causal_variant_and_reads_like_any(tmp_path):
    import zarr

    from mptvc_latents.store import TokenDataset, detokenize, tokenize
    from mptvc_latents.video import write_video

    sample = read_video(SAMPLE, max_frames=24)
    write_video(tmp_path / "clip.mp4", sample.frames[:, 40:80, 100:148], sample.fps)
    causal = tiny_model(tiny_config(causal=True, chunk_frames=16))
    base = tiny_model(tiny_config(chunk_frames=16))  # the same weights (seed 0), non-causal
    assert causal.weights_digest() != base.weights_digest()  # other tokens from the same weights
    tokenize([tmp_path / "clip.mp4"], tmp_path / "causal.zarr", causal, progress=False)
    tokenize([tmp_path / "clip.mp4"], tmp_path / "base.zarr", base, progress=False)
    attrs = zarr.open_group(str(tmp_path / "causal.zarr"), mode="r").attrs["checkpoint"]
    assert attrs["config"]["causal"] is True and attrs["digest"] == causal.weights_digest()
    assert "causal" not in zarr.open_group(str(tmp_path / "base.zarr"), mode="r").attrs["checkpoint"]["config"]
    with pytest.raises(ValueError, match="another checkpoint"):
        tokenize([tmp_path / "clip.mp4"], tmp_path / "causal.zarr", base, progress=False)
    a, b = TokenDataset(tmp_path / "causal.zarr", window=2), TokenDataset(tmp_path / "base.zarr", window=2)
    assert len(a) == len(b) > 0
    assert _shapes(a[0]) == _shapes(b[0]) and "level_0" in str(_shapes(a[0]))
    detokenize(tmp_path / "causal.zarr", tmp_path / "out", causal, suffix=".npy", progress=False)
    decoded = np.load(next((tmp_path / "out").rglob("*.npy")))
    np.testing.assert_array_equal(decoded, causal.decode(causal.encode(read_video(tmp_path / "clip.mp4").frames)))


def _shapes(item):
    if isinstance(item, dict):
        return {k: _shapes(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [_shapes(v) for v in item]
    return tuple(getattr(item, "shape", ())), str(getattr(item, "dtype", type(item).__name__))


def test_cli_stream_defaults_to_the_shipped_causal_checkpoint(shipped, tmp_path):
    video = np.ascontiguousarray(read_video(SAMPLE, max_frames=9).frames[:, :64, :96])
    done = _mptvc(
        "encode", "--stream", "--size", "96x64", "--fps", "25", "-", str(tmp_path / "s.mptvc"), stdin=video.tobytes()
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "s.mptvc").read_bytes() == _written(shipped, video, 25.0)
    done = _mptvc("decode", str(tmp_path / "s.mptvc"), str(tmp_path / "s.npy"))  # a causal file: no --ckpt needed
    assert done.returncode == 0, done.stderr.decode()
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), shipped.decompress(shipped.compress(video, 25.0)))
