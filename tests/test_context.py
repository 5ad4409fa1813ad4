"""The context entropy model (``entropy/context.py``, container v3): compress -> decompress equal to
``decode(encode(x))`` at every k_max, every complete prefix of a cut v3 file, intra chunks coded
without the chunks before them, bytes across torch thread counts, v2 files of the base checkpoint
decoded by the fitted one and v3 files refused by the base, streams of other tables and damaged
streams refused (digest, decoder end checks), ``mptvc train-entropy`` resumed after a kill and from
the command line, ``ContextConfig`` messages, and the weights digest that keeps token stores valid.

The codec is the tiny one of ``tests/_tiny.py``; its tables are fitted on a store of three
16-frame crops of the sample. The coded clip is 40 frames (5 chunks of 2 token frames) of 56x40,
so it pads in h and w; with an intra period of 2, chunks 0, 2 and 4 are intra chunks.
"""

import dataclasses
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mptvc_latents import cli
from mptvc_latents.codec import MPTVC, ChunkContexts
from mptvc_latents.config import CodecConfig, ContextConfig
from mptvc_latents.entropy.context import ContextModel, LevelContext
from mptvc_latents.formats import container as bs
from mptvc_latents.formats.container import check_checkpoint, read_mptvc, truncate_mptvc, write_mptvc
from mptvc_latents.formats.token_store import TokenStore
from mptvc_latents.store import StoreCheckpointError, tokenize
from mptvc_latents.train import entropy
from mptvc_latents.train.entropy import clip_counts, fit_context_model, with_context_model
from mptvc_latents.types import Compressed, VideoInfo
from mptvc_latents.video import read_video, write_video
from tests._tiny import SAMPLE, tiny_config, tiny_model

K = 3
PERIOD = 2  # intra chunks 0, 2, 4 of the clip
CLIPS = 3  # in the store the tables are fitted on
CHUNKS = 5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("context")


@pytest.fixture(scope="module")
def store(model, work) -> Path:
    """Three 16-frame crops of the sample (the first holds its hard cut), tokenized by ``model``."""
    folder = work / "videos"
    folder.mkdir()
    sample = read_video(SAMPLE, max_frames=48, start=14)
    for i in range(CLIPS):
        frames = sample.frames[16 * i : 16 * i + 16, 40 + 24 * i : 80 + 24 * i, 100 + 40 * i : 156 + 40 * i]
        write_video(folder / f"clip{i}.mp4", frames, sample.fps)
    summary = tokenize([folder], work / "store.zarr", model, progress=False)
    assert len(summary.written) == CLIPS and not summary.failed
    return work / "store.zarr"


@pytest.fixture(scope="module")
def fitted(store, ckpt, work) -> MPTVC:
    """``model`` with context tables fitted on ``store`` (``mptvc train-entropy``'s function)."""
    return fit_context_model([store], ckpt, work / "fitted", ContextConfig(intra_period=PERIOD)).eval()


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return np.ascontiguousarray(read_video(SAMPLE, max_frames=8 * CHUNKS).frames[:, 30:70, 60:116])


@pytest.fixture(scope="module")
def tokens(model, clip):
    return model.encode(clip)


@pytest.fixture(scope="module")
def decoded(model, tokens) -> list[np.ndarray]:
    """``decoded[k]``: ``decode(encode(clip))`` from levels 0..k, the reference of every decoder here."""
    return [model.decode(tokens, k) for k in range(K)]


@pytest.fixture(scope="module")
def compressed(fitted, clip) -> Compressed:
    return fitted.compress(clip)


@pytest.fixture(scope="module")
def data(fitted, compressed) -> bytes:
    return write_mptvc(compressed, fitted.config.to_dict(), fitted.tables_digest())


def _sentence(error: BaseException, min_words: int = 6) -> str:
    message = str(error)
    assert message[0].isupper() and message.endswith("."), f"not a sentence: {message!r}"
    assert "\n" not in message and len(message.split()) >= min_words, message
    return message


def _chunk_contexts(model: MPTVC, tokens, intra_period: int):
    """Per chunk c and level k: (symbols (C_k, T', H', W'), scale indexes, LevelContext), as the codec codes them."""
    chunk_t = model.config.chunk_frames // model.config.patch_t
    contexts = ChunkContexts(intra_period, K)
    out = []
    for c in range(tokens.symbols[0].shape[0] // chunk_t):
        chunk = [np.ascontiguousarray(s[c * chunk_t : (c + 1) * chunk_t]).transpose(3, 0, 1, 2) for s in tokens.symbols]
        row = []
        for k in range(K):
            scale_index = model.level(k).scale_index(torch.from_numpy(chunk[k])[None])
            row.append((chunk[k], scale_index, contexts.level(c, k, chunk[k - 1] if k else None)))
        for k, s in enumerate(chunk):
            contexts.done(c, k, s)
        out.append(row)
    return out


def _with_period(model: MPTVC, intra_period: int) -> MPTVC:
    """``model`` (fitted) with another intra period and the same tables."""
    context = dataclasses.replace(model.config.context, intra_period=intra_period)
    other = MPTVC(dataclasses.replace(model.config, context=context))
    other.load_state_dict(model.state_dict())
    return other.eval()


def _context_tables(model: MPTVC) -> dict[str, torch.Tensor]:
    return {name: t for name, t in model.state_dict().items() if ".context." in name}


# --------------------------------------------------------------------------- round trip and prefixes


def test_the_fitted_tables_code_the_same_tokens_in_fewer_bytes(model, fitted, clip, tokens, compressed):
    assert compressed.intra_period == PERIOD and len(compressed.segments[0]) == CHUNKS
    again = fitted.encode(clip)  # the context tables never change the symbols
    assert all(np.array_equal(a, b) for a, b in zip(again.symbols, tokens.symbols, strict=True))
    uniform = with_context_model(model, fitted.config.context)
    before = uniform.compress(clip)
    assert sum(compressed.level_bytes()) < sum(before.level_bytes())
    uniform.load_state_dict(fitted.state_dict())  # the coders built on the old tables must go
    assert uniform.compress(clip).segments == compressed.segments


def test_compress_decompress_equals_decode_of_encode_at_every_k_max(fitted, compressed, decoded):
    for k in range(K):
        assert np.array_equal(fitted.decompress(compressed, k), decoded[k]), k
        streamed = np.concatenate(list(fitted.decompress_stream(compressed, k)))
        assert np.array_equal(streamed, decoded[k]), k


@pytest.mark.parametrize("flags", range(32))
def test_every_combination_of_contexts_codes_and_decodes_every_chunk_and_level(model, tokens, flags):
    """Each context switched on or off (temporal, coarser, channel, channel changes), 3 scale bins,
    a hyper latent at every level or from level 1 on; through the level's compress / decompress."""
    temporal, coarser, channels, changes = (bool(flags >> i & 1) for i in range(4))
    config = ContextConfig(
        scale_bins=3,
        temporal=temporal,
        coarser=coarser,
        channels=channels,
        channel_changes=changes,
        intra_period=PERIOD,
        hyper_from=flags >> 4,
    )
    coder = with_context_model(model, config)
    for level, c in zip(coder.pyramid_levels(), clip_counts(coder, tokens.symbols), strict=True):
        level.context.fit(c)
    for c, row in enumerate(_chunk_contexts(coder, tokens, PERIOD)):
        for k, (symbols, scale_index, context) in enumerate(row):
            level = coder.level(k)
            t = torch.from_numpy(symbols)[None]
            z, y = level.compress(t.float(), t, context)
            assert (len(z) == 0) == (k < config.hyper_from), (c, k)
            assert np.array_equal(level.decompress((z, y), symbols.shape, context)[0].numpy(), symbols), (c, k)
            assert 8 * len(y) >= level.context.ideal_bits(symbols, scale_index, context)


def test_a_v3_file_decodes_every_complete_prefix_of_a_cut(fitted, data, decoded):
    assert data[8:10] == b"\x03\x00"
    header = bs.parse_header(data)
    assert header.version == 3 and header.config["context"]["intra_period"] == PERIOD
    ends = header.level_ends()
    for k in range(K):
        assert truncate_mptvc(data, k) == data[: ends[k]]
        cuts = [ends[k]] + ([ends[k] + 1, ends[k + 1] - 1] if k + 1 < K else [])
        for n in cuts:
            stream, _, report = read_mptvc(data[:n], warn=False)
            assert report.levels_complete == k + 1 and stream.intra_period == PERIOD, n
            check_checkpoint(header, *fitted.file_identity(header.config))
            assert np.array_equal(fitted.decompress(stream), decoded[k]), (k, n)
    with pytest.raises(bs.NoCompleteLevelError):
        read_mptvc(data[: ends[0] - 1])


def test_a_v3_header_must_carry_the_context_model_and_a_v2_header_must_not(data):
    """The version says how the y streams are coded; a header whose config disagrees is malformed."""
    as_v2 = bytearray(data)
    as_v2[8:10] = b"\x02\x00"
    end = 14 + int.from_bytes(data[10:14], "little")
    as_v2[end : end + 4] = zlib.crc32(bytes(as_v2[:end])).to_bytes(4, "little")
    with pytest.raises(bs.MalformedHeaderError, match="version 2 file cannot carry a context entropy model"):
        read_mptvc(bytes(as_v2))


# --------------------------------------------------------------------------- random access and determinism


def test_an_intra_chunk_codes_the_same_whatever_the_chunks_before_it(fitted, clip):
    """Chunk 4 with intra period 4 depends on nothing before it; with intra period 3 it continues chunk 3."""
    other = clip.copy()
    other[:32] = read_video(SAMPLE, max_frames=32, start=30).frames[:, 80:120, 200:256]
    four = _with_period(fitted, 4)
    a, b = four.encode(clip), four.encode(other)
    for k in range(K):  # the precondition: chunks 0-3 differ, chunk 4 has the same symbols
        assert not np.array_equal(a.symbols[k][:8], b.symbols[k][:8])
        assert np.array_equal(a.symbols[k][8:], b.symbols[k][8:])
    ca, cb = four.compress(clip), four.compress(other)
    for k in range(K):
        assert ca.segments[k][4] == cb.segments[k][4], k
    three = _with_period(fitted, 3)
    continued = [three.compress(v).segments for v in (clip, other)]
    assert any(continued[0][k][4][1] != continued[1][k][4][1] for k in range(K))  # the test can tell

    # A reader starting at chunk 4 decodes it alone, as the whole file's decoder does.
    info = ca.info
    alone = Compressed(
        [[level[4]] for level in ca.segments],
        VideoInfo(8, info.height, info.width, info.fps, dataclasses.replace(info.padding, t=0), info.scene_ids[32:40]),
        4,
    )
    assert np.array_equal(four.decompress(alone), four.decompress(ca)[32:40])


def test_bytes_are_identical_with_one_and_two_torch_threads(fitted, clip):
    small = np.ascontiguousarray(clip[:16, :32, :48])  # small: two threads crawl while another job runs
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = fitted.compress(small)
        torch.set_num_threads(2)
        double = fitted.compress(small)
    finally:
        torch.set_num_threads(threads)
    assert single.segments == double.segments and single.intra_period == double.intra_period == PERIOD


# --------------------------------------------------------------------------- checkpoints and files


def test_a_v2_file_from_before_the_fit_decodes_with_the_fitted_checkpoint(model, fitted, clip, decoded):
    old = write_mptvc(model.compress(clip), model.config.to_dict(), model.tables_digest())
    assert old[8:10] == b"\x02\x00"
    stream, header, _ = read_mptvc(old)
    assert stream.intra_period is None and "context" not in header.config
    check_checkpoint(header, *fitted.file_identity(header.config), "the file 'old.mptvc'")
    for k in range(K):
        assert np.array_equal(fitted.decompress(stream, k), decoded[k]), k


def test_a_v3_file_is_refused_by_the_base_checkpoint_with_a_clear_error(model, fitted, data):
    stream, header, _ = read_mptvc(data)
    with pytest.raises(bs.WrongCheckpointError) as info:
        check_checkpoint(header, *model.file_identity(header.config), "the file 'clip.mptvc'")
    message = _sentence(info.value)
    assert "'clip.mptvc'" in message and "another checkpoint" in message and "--ckpt" in message
    assert fitted.tables_digest()[:12] in message and model.tables_digest()[:12] in message
    with pytest.raises(ValueError, match="Level 0 has no context entropy model.*mptvc train-entropy") as info:
        model.decompress(stream)  # the library, without the digest check
    _sentence(info.value)


def test_streams_of_other_tables_are_refused_by_the_digest_and_by_the_decoder(model, fitted, store, data):
    other = with_context_model(model, fitted.config.context)
    tokens = TokenStore.open(store, model)
    per_clip = [clip_counts(other, tokens.read_tokens(key).symbols) for key in tokens.clips()]
    counts = [sum(c) for c in zip(*per_clip, strict=True)]
    for level, c in zip(other.pyramid_levels(), counts, strict=True):
        level.context.fit(c, alpha=4.0)  # the same symbols, smoothed otherwise: other tables
    assert other.weights_digest() == fitted.weights_digest() and other.tables_digest() != fitted.tables_digest()
    assert other.tables_digest(context=False) == fitted.tables_digest(context=False)
    stream, header, _ = read_mptvc(data)
    with pytest.raises(bs.WrongCheckpointError, match="another checkpoint"):
        check_checkpoint(header, *other.file_identity(header.config))
    for k in range(K):  # past the digest, the decoder's end checks still tell
        with pytest.raises(ValueError):
            other.decompress(stream, k)


def test_every_damaged_or_cut_stream_raises_value_error(fitted, tokens, compressed):
    """Every bit of every y stream flipped, every z stream of chunks 0 and 1 flipped, every stream
    cut: a ValueError from the decoder (the rANS end checks), never other symbols."""
    flips = 0
    for c, row in enumerate(_chunk_contexts(fitted, tokens, PERIOD)):
        for k, (symbols, scale_index, context) in enumerate(row):
            table = fitted.level(k).context
            z, y = compressed.segments[k][c]
            assert np.array_equal(table.decode(y, scale_index, context), symbols)
            for i in range(len(y)):
                for bit in range(8):
                    damaged = bytearray(y)
                    damaged[i] ^= 1 << bit
                    with pytest.raises(ValueError):
                        table.decode(bytes(damaged), scale_index, context)
                    flips += 1
            for n in range(len(y)):
                with pytest.raises(ValueError):
                    table.decode(y[:n], scale_index, context)
            if c < 2:
                for i in range(len(z)):  # levels without a hyper latent have an empty z
                    for bit in range(8):
                        damaged = bytearray(z)
                        damaged[i] ^= 1 << bit
                        with pytest.raises(ValueError):
                            fitted.level(k).decompress((bytes(damaged), y), symbols.shape, context)
                        flips += 1
    assert flips > 1000


def test_a_level_without_a_hyper_latent_refuses_a_z_stream(fitted, compressed):
    assert fitted.config.context.hyper_from == 1 and all(z == b"" for z, _ in compressed.segments[0])
    assert all(z for level in compressed.segments[1:] for z, _ in level)
    segments = [list(level) for level in compressed.segments]
    segments[0][2] = (compressed.segments[1][2][0], compressed.segments[0][2][1])
    with pytest.raises(ValueError, match="Level 0 codes no hyper latent") as info:
        fitted.decompress(Compressed(segments, compressed.info, PERIOD), 0)
    _sentence(info.value)


def test_a_damaged_segment_whose_crc_was_fixed_up_raises_and_the_levels_below_survive(fitted, compressed, decoded):
    segments = [list(level) for level in compressed.segments]
    z, y = segments[1][3]
    segments[1][3] = (z, bytes([y[0] ^ 0x10]) + y[1:])
    damaged = write_mptvc(
        Compressed(segments, compressed.info, PERIOD), fitted.config.to_dict(), fitted.tables_digest()
    )
    stream, _, _ = read_mptvc(damaged)  # the CRCs match: only the decoder can tell
    assert np.array_equal(fitted.decompress(stream, 0), decoded[0])
    for k in (1, 2):
        with pytest.raises(ValueError):
            fitted.decompress(stream, k)


def test_the_weights_digest_ignores_the_context_tables_so_stores_stay_valid(model, fitted, store, ckpt, work):
    assert fitted.weights_digest() == model.weights_digest()
    assert fitted.tables_digest(context=False) == model.tables_digest() != fitted.tables_digest()
    opened = TokenStore.open(store, fitted)  # raises StoreCheckpointError for another checkpoint
    key = opened.clips()[0]
    ours, theirs = opened.read_tokens(key).symbols, TokenStore.open(store, model).read_tokens(key).symbols
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    base = model.state_dict()
    for name, tensor in fitted.state_dict().items():
        if ".context." not in name:
            assert tensor.dtype == base[name].dtype and torch.equal(tensor, base[name]), name
    record = json.loads((work / "fitted" / "entropy.json").read_text())
    assert record["clips"] == CLIPS and record["base"] == model.weights_digest()
    other = work / "other-ckpt"
    tiny_model(seed=1).save_pretrained(other)
    with pytest.raises(StoreCheckpointError):
        fit_context_model([store], other, work / "never")


# --------------------------------------------------------------------------- train-entropy


class _Killed(Exception):
    """Stands for a kill: nothing after it runs in fit_context_model."""


def test_train_entropy_resumes_after_a_kill_and_counts_only_new_clips(fitted, store, ckpt, tmp_path, monkeypatch):
    real = entropy.clip_counts
    counted: list[int] = []

    def killed_after_one_clip(model, symbols):
        if counted:
            raise _Killed
        counted.append(1)
        return real(model, symbols)

    out = tmp_path / "resumed"
    state = tmp_path / "resumed.entropy-state.npz"
    monkeypatch.setattr(entropy, "clip_counts", killed_after_one_clip)
    with pytest.raises(_Killed):
        fit_context_model([store], ckpt, out, ContextConfig(intra_period=PERIOD))
    assert state.is_file() and not out.exists()
    assert len(np.load(state)["done"]) == 1

    counted.clear()
    monkeypatch.setattr(entropy, "clip_counts", lambda model, symbols: counted.append(1) or real(model, symbols))
    resumed = fit_context_model([store], ckpt, out, ContextConfig(intra_period=PERIOD))
    assert len(counted) == CLIPS - 1 and not state.exists()
    ours, theirs = _context_tables(resumed), _context_tables(fitted)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[n], theirs[n]) for n in ours)
    assert json.loads((out / "entropy.json").read_text())["clips"] == CLIPS


def test_train_entropy_starts_afresh_when_the_saved_counts_are_for_other_contexts(store, ckpt, tmp_path, monkeypatch):
    real = entropy.clip_counts
    counted: list[int] = []

    def killed_after_one_clip(model, symbols):
        if counted:
            raise _Killed
        counted.append(1)
        return real(model, symbols)

    monkeypatch.setattr(entropy, "clip_counts", killed_after_one_clip)
    with pytest.raises(_Killed):
        fit_context_model([store], ckpt, tmp_path / "out", ContextConfig(intra_period=3))
    counted.clear()
    monkeypatch.setattr(entropy, "clip_counts", lambda model, symbols: counted.append(1) or real(model, symbols))
    fit_context_model([store], ckpt, tmp_path / "out", ContextConfig(intra_period=PERIOD))
    assert len(counted) == CLIPS


def test_the_train_entropy_command_writes_a_checkpoint_that_encode_and_decode_use(
    model, store, ckpt, clip, work, tmp_path, capsys
):
    out = tmp_path / "ctx-ckpt"
    argv = ["train-entropy", store, "--out", out, "--ckpt", ckpt, "--intra-period", "3", "--scale-bins", "8"]
    assert cli.main([str(a) for a in [*argv, "--alpha", "0.25"]]) == 0
    ctx = MPTVC.from_pretrained(out)
    assert ctx.config.context == ContextConfig(scale_bins=8, intra_period=3)
    assert json.loads((out / "entropy.json").read_text())["alpha"] == 0.25
    assert not (tmp_path / "ctx-ckpt.entropy-state.npz").exists()

    video = tmp_path / "clip.mp4"
    write_video(video, clip, 25.0)
    frames = read_video(video).frames
    coded, old, npy = tmp_path / "clip.mptvc", tmp_path / "old.mptvc", tmp_path / "out.npy"
    assert cli.main(["encode", str(video), str(coded), "--ckpt", str(out)]) == 0
    expected = ctx.compress(frames, 25.0)
    assert coded.read_bytes() == write_mptvc(expected, ctx.config.to_dict(), ctx.tables_digest())
    assert cli.main(["decode", str(coded), str(npy), "--ckpt", str(out)]) == 0
    assert np.array_equal(np.load(npy), model.decode(model.encode(frames, 25.0)))

    assert cli.main(["encode", str(video), str(old), "--ckpt", str(ckpt)]) == 0  # v2, the base checkpoint
    assert cli.main(["decode", str(old), str(npy), "--ckpt", str(out), "--k-max", "1"]) == 0
    assert np.array_equal(np.load(npy), model.decompress(read_mptvc(old)[0], 1))

    capsys.readouterr()
    assert cli.main(["decode", str(coded), str(tmp_path / "no.npy"), "--ckpt", str(ckpt)]) != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mptvc: error: ") and str(coded) in line and "another checkpoint" in line
    assert not (tmp_path / "no.npy").exists()


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("scale_bins", 0, "scale_bins must be an integer in [1, 1024], got 0."),
        ("scale_bins", 1025, "got 1025."),
        ("scale_bins", 2.0, "got 2.0."),
        ("scale_bins", True, "got True."),
        ("temporal", 1, "ContextConfig.temporal must be true or false, got 1."),
        ("coarser", "yes", "ContextConfig.coarser must be true or false, got 'yes'."),
        ("channels", None, "ContextConfig.channels must be true or false, got None."),
        ("channel_changes", 0, "ContextConfig.channel_changes must be true or false, got 0."),
        ("hyper_from", -1, "hyper_from must be a non-negative integer (a level), got -1."),
        ("intra_period", 0, "intra_period must be a positive integer (chunks), got 0."),
        ("intra_period", -4, "got -4."),
        ("intra_period", 1.5, "got 1.5."),
    ],
)
def test_context_config_rejects_bad_values_with_sentences(field, value, words):
    with pytest.raises(ValueError) as info:
        ContextConfig(**{field: value})
    assert words in _sentence(info.value, min_words=5)


def test_a_config_with_a_context_model_round_trips_and_one_without_keeps_its_old_json():
    with_context = tiny_config(context=ContextConfig(scale_bins=4, coarser=False, intra_period=7))
    assert CodecConfig.from_dict(json.loads(json.dumps(with_context.to_dict()))) == with_context
    assert "context" not in tiny_config().to_dict()
    assert CodecConfig.from_dict(tiny_config().to_dict()).context is None


def test_a_codec_config_refuses_a_context_that_is_not_a_context_config():
    with pytest.raises(ValueError, match="CodecConfig.context"):
        tiny_config(context={"intra_period": 4})


def test_new_context_tables_can_replace_those_of_a_checkpoint_that_has_some(fitted):
    """train-entropy on a checkpoint with context tables (the shipped one) in another layout."""
    refit = with_context_model(fitted, ContextConfig(scale_bins=3))
    assert refit.level(0).context.radix[0] == 1 and refit.weights_digest() == fitted.weights_digest()


def test_fitting_refuses_counts_of_the_wrong_shape_and_a_non_positive_alpha(model):
    table = with_context_model(model, ContextConfig()).level(1).context
    assert isinstance(table, ContextModel)
    n = table.num_contexts  # level 1 of the tiny codec: 8 FSQ levels, 3 channels
    assert n == int(np.prod(table.radix)) and table.radix[1:4] == (9, 4, 3)
    with pytest.raises(ValueError, match=rf"counts must be non-negative of shape \({n}, 8\), got \(3, 8\)\."):
        table.fit(np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"alpha must be positive \(it keeps every symbol codable\), got 0\.0\."):
        table.fit(np.zeros((n, 8)), alpha=0.0)
    with pytest.raises(ValueError) as info:
        table.encode(np.zeros((5, 1, 2, 2), np.uint8), np.zeros((5, 1, 2, 2), np.int32), LevelContext())
    _sentence(info.value)
