"""Detection and tracking heads: targets, features, tracker, MOT files, metrics, training, CLI.

The data is what the repo ships: textured sprites pasted with exact boxes onto the sample clip,
tokenized with the shipped codec.
"""

import json

import numpy as np
import pytest
import torch

from heads.cache import cache_sequence, load_cached, prefix_bpp
from heads.data import box_window, clip_frames, crop, delay, reference_frames, rescale
from heads.detector import CenterHead, DetectorConfig
from heads.evaluate import coco_map, track_metrics
from heads.experiment import evaluate_head, grid_sequence, new_head, run_experiment
from heads.features import PIXEL_CHANNELS, pixel_patches, token_features
from heads.mot import read_mot, write_mot
from heads.synthetic import paste_sprites
from heads.targets import decode_boxes, encode_targets
from heads.tracker import ByteTracker, TrackerConfig, iou_matrix, track_sequence
from heads.train import TrainConfig, focal_loss, train_head
from mptvc_latents import cli
from mptvc_latents.video import read_video
from tests._tiny import SAMPLE

# ---------------------------------------------------------------- targets


def test_targets_decode_back_to_the_same_boxes():
    boxes = np.array([[1, 13.0, 21.0, 30.0, 70.0], [2, 100.5, 40.25, 18.0, 44.0], [3, 200.0, 5.0, 64.0, 120.0]])
    tg = encode_targets(boxes, (20, 40))
    heat = torch.from_numpy(tg.heatmap)
    offset, size = torch.zeros(2, 20, 40), torch.zeros(2, 20, 40)
    i, j = torch.from_numpy(tg.centres[:, 0]), torch.from_numpy(tg.centres[:, 1])
    offset[:, i, j] = torch.from_numpy(tg.offset).T
    size[:, i, j] = torch.from_numpy(tg.size).T
    assert heat[i, j].eq(1).all() and heat.max() == 1
    out, scores, cells = decode_boxes(heat, offset, size, threshold=0.99)
    order = np.argsort(out[:, 0].numpy())
    np.testing.assert_allclose(out.numpy()[order], boxes[:, 1:], atol=1e-4)
    assert len(scores) == 3


def test_targets_drop_boxes_centred_off_the_grid():
    tg = encode_targets(np.array([[1, -50, 10, 20, 20], [2, 10, 10, 20, 20], [3, 10, 10, 0, 20]]), (8, 8))
    assert tg.ids.tolist() == [2]


def test_decode_rejects_mismatched_maps():
    with pytest.raises(ValueError, match="heatmap must be"):
        decode_boxes(torch.zeros(4, 4), torch.zeros(2, 4, 5), torch.zeros(2, 4, 4))


def test_focal_loss_is_lower_for_a_better_prediction():
    target = torch.from_numpy(encode_targets(np.array([[1, 30, 30, 20, 40]]), (10, 10)).heatmap)
    good = torch.logit(target.clamp(0.01, 0.99))
    assert focal_loss(good, target) < focal_loss(torch.zeros(10, 10), target)


# ---------------------------------------------------------------- features


def test_pixel_patches_put_each_pixel_in_its_cell_and_channel():
    video = np.zeros((6, 20, 30, 3), np.uint8)
    video[5, 17, 9, 2] = 200  # frame 5 = token frame 1 slot 1; row 17 = cell 2 row 1; col 9 = cell 1 col 1
    x = pixel_patches(video, (2, 3, 4))
    assert x.shape == (2, PIXEL_CHANNELS, 3, 4) and x.dtype == torch.uint8
    channel = ((1 * 8 + 1) * 8 + 1) * 3 + 2  # (slot, row, col, rgb)
    assert x[1, channel, 2, 1] == 200
    assert int(x.sum()) == 3 * 200  # edge padding repeats the last frame (5) into slots 2 and 3
    with pytest.raises(ValueError, match="does not fit"):
        pixel_patches(video, (1, 3, 4))


def test_token_features_map_symbols_to_fsq_codes():
    s0 = np.full((2, 3, 4, 4), 4, np.uint8)  # L=8: the middle symbol is code 0
    s1 = np.zeros((2, 3, 4, 12), np.uint8)  # symbol 0 is code -1
    x = token_features([s0, s1], [8, 8])
    assert x.shape == (2, 16, 3, 4)
    assert x[:, :4].eq(0).all() and x[:, 4:].eq(-1).all()
    with pytest.raises(ValueError, match="share one token grid"):
        token_features([s0, s1[:, :2]], [8, 8])


def test_reference_frames_skip_end_padding():
    assert reference_frames(71, 18).tolist() == [4 * t + 1 for t in range(18)]
    assert reference_frames(6, 2).tolist() == [1, 5]
    assert reference_frames(5, 2).tolist() == [1]


def test_rescale_and_delay_move_boxes_with_the_pixels():
    seq = paste_sprites(np.zeros((8, 64, 96, 3), np.uint8), num_objects=1, size=(20, 10), seed=1)
    big = rescale(seq, 2.0)
    assert big.frames.shape == (8, 128, 192, 3)
    np.testing.assert_allclose(big.boxes[:, 2:], seq.boxes[:, 2:] * 2)
    late = delay(seq, 3)
    assert late.num_frames == 5 and late.boxes[0, 0] == 1
    np.testing.assert_allclose(late.boxes[0, 2:], seq.boxes[3, 2:])
    x, y, w, h = seq.boxes[0, 2:].astype(int)
    assert seq.frames[0, y : y + h, x : x + w].any() and not seq.frames[0, :y].any()
    with pytest.raises(ValueError, match="start must be"):
        delay(seq, 8)
    part = clip_frames(seq, 2, 3)
    assert part.num_frames == 3 and part.boxes[:, 0].tolist() == [1, 2, 3]
    np.testing.assert_array_equal(part.frames, seq.frames[2:5])


def test_crop_shifts_and_clips_boxes():
    from heads.data import Sequence

    frames = np.zeros((2, 64, 96, 3), np.uint8)
    frames[:, 20:40, 30:40] = 255
    seq = Sequence("one", frames, 25.0, np.array([[1, 1, 30, 20, 10, 20], [2, 1, 90, 60, 5, 4]], float))
    cut = crop(seq, 25, 26, 32, 48)
    np.testing.assert_allclose(cut.boxes, [[1, 1, 4, 0, 10, 15]])  # the second box lies outside: dropped
    assert cut.frames.shape == (2, 32, 48, 3) and cut.frames[0, :15, 4:14].all() and not cut.frames[0, 15:].any()
    with pytest.raises(ValueError, match="does not lie inside"):
        crop(seq, 40, 0, 32, 48)
    assert box_window(seq, 16) == (16, 16, 48, 80)  # boxes span x 30..95, y 20..64


def test_paste_keeps_people_and_boxes_and_replaces_the_scenery():
    from heads.paste import cover, paste_boxes

    seq = paste_sprites(np.full((4, 64, 96, 3), 7, np.uint8), num_objects=2, size=(20, 10), seed=3)
    background = np.full((5, 30, 40, 3), 200, np.uint8)
    out = paste_boxes(seq, background)
    np.testing.assert_array_equal(out.boxes, seq.boxes)
    inside = np.zeros(out.frames.shape[:3], bool)
    for f, _, x, y, w, h in seq.boxes.astype(int):
        inside[f - 1, y : y + h, x : x + w] = True
    np.testing.assert_array_equal(out.frames[inside], seq.frames[inside])
    assert (out.frames[~inside] == 200).all()
    assert cover(np.zeros((1, 30, 40, 3), np.uint8), 64, 96).shape == (1, 64, 96, 3)
    with pytest.raises(ValueError, match="at least 4 frames"):
        paste_boxes(seq, background[:3])


# ---------------------------------------------------------------- tracker


def _dets(boxes, emb=None, scores=None):
    from heads.infer import Detections

    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return Detections(boxes, np.full(len(boxes), 0.9) if scores is None else np.asarray(scores, float),
                      np.zeros((len(boxes), 2)) if emb is None else np.asarray(emb, float))  # fmt: skip


def test_iou_matrix():
    iou = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_tracker_keeps_identities_through_a_crossing_and_missed_frames():
    """Two boxes cross; one is missed for two frames right at the crossing; appearance separates them."""
    red, blue = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    frames = []
    for t in range(12):
        a = [10 + 10 * t, 50, 20, 40]  # moving right
        b = [120 - 10 * t, 54, 20, 40]  # moving left
        dets, embs = [a, b], [red, blue]
        if t in (6, 7):
            dets, embs = [b], [blue]
        frames.append(_dets(dets, embs))
    rows = track_sequence(frames)
    assert len(np.unique(rows[:, 1])) == 2, "a new identity was started"
    for tid in np.unique(rows[:, 1]):
        xs = rows[rows[:, 1] == tid][:, 2]
        assert np.all(np.diff(xs) > 0) or np.all(np.diff(xs) < 0), f"track {tid} changed direction: ids swapped"
    right_mover = rows[(rows[:, 0] == 1) & (rows[:, 2] == 10), 1][0]
    assert set(rows[rows[:, 1] == right_mover][:, 0].astype(int)) == set(range(1, 13)) - {7, 8}


def test_tracker_low_score_detections_extend_tracks_but_do_not_start_them():
    tracker = ByteTracker(TrackerConfig(high=0.5, low=0.1, new_track=0.6))
    assert tracker.update(np.array([[0, 0, 10, 20]]), np.array([0.3])).shape == (0, 6)
    first = tracker.update(np.array([[0, 0, 10, 20]]), np.array([0.9]))
    second = tracker.update(np.array([[1, 0, 10, 20]]), np.array([0.3]))
    assert first[0, 0] == second[0, 0] == 1


def test_tracker_rejects_inconsistent_input():
    with pytest.raises(ValueError, match="one row per detection"):
        ByteTracker().update(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="low <= high"):
        TrackerConfig(low=0.6, high=0.5)


# ---------------------------------------------------------------- MOT files and metrics


def test_mot_files_round_trip(tmp_path):
    rows = np.array([[2, 1, 10.5, 20.25, 30, 40, 0.9], [1, 2, 1, 2, 3, 4, 0.5], [1, 1, 5, 6, 7, 8, 1.0]])
    write_mot(tmp_path / "t.txt", rows)
    back = read_mot(tmp_path / "t.txt")
    np.testing.assert_allclose(back, rows[[2, 1, 0]], atol=1e-2)
    assert (tmp_path / "t.txt").read_text().splitlines()[0] == "1,1,5.00,6.00,7.00,8.00,1.0000,-1,-1,-1"
    write_mot(tmp_path / "e.txt", np.zeros((0, 7)))
    assert read_mot(tmp_path / "e.txt").shape == (0, 7)
    with pytest.raises(ValueError, match="integers from 1"):
        write_mot(tmp_path / "bad.txt", np.array([[0, 1, 1, 2, 3, 4, 1.0]]))
    with pytest.raises(ValueError, match="does not exist"):
        read_mot(tmp_path / "missing.txt")


def _gt_tracks():
    rows = [[f, i, 20 * f + 60 * i, 30, 25, 50] for f in range(1, 13) for i in range(1, 4)]
    return np.array(rows, float)


def test_coco_map_perfect_is_one_and_shifted_is_lower():
    gt = _gt_tracks()
    per_image = [gt[gt[:, 0] == f, 2:6] for f in range(1, 13)]
    perfect = coco_map(per_image, [(b, np.ones(len(b))) for b in per_image])
    assert perfect["mAP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0)
    shifted = coco_map(per_image, [(b + [8, 0, 0, 0], np.ones(len(b))) for b in per_image])
    assert shifted["mAP"] < 0.8 and shifted["AP50"] == pytest.approx(1.0)
    assert coco_map(per_image, [(np.zeros((0, 4)), np.zeros(0))] * 12)["mAP"] == 0.0
    with pytest.raises(ValueError, match="one prediction entry"):
        coco_map(per_image, [])


def test_trackeval_perfect_tracks_score_one_and_swapped_ids_lower():
    gt = _gt_tracks()
    perfect = track_metrics(gt, np.column_stack([gt, np.ones(len(gt))]), 12)
    for name in ("HOTA", "MOTA", "IDF1"):
        assert perfect[name] == pytest.approx(1.0), name
    swapped = gt.copy()
    late = swapped[:, 0] > 6
    swapped[late, 1] = swapped[late, 1] % 3 + 1  # every identity switches half way
    worse = track_metrics(gt, swapped, 12)
    assert worse["IDF1"] < 0.7 and worse["HOTA"] < 0.8 and worse["IDSW"] == 3
    missing = track_metrics(gt, gt[gt[:, 1] != 1], 12)
    assert missing["MOTA"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="Frames must lie"):
        track_metrics(gt, gt, 5)


def test_prefix_bpp():
    assert prefix_bpp([100, 300], 2, 10, 10) == [4.0, 16.0]
    with pytest.raises(ValueError, match="no pixels"):
        prefix_bpp([1], 0, 10, 10)


# ---------------------------------------------------------------- the head


def test_head_shapes_and_strict_hub_round_trip(tmp_path):
    model = CenterHead(DetectorConfig(in_channels=16, dim=16, depth=1, embed_dim=4, k=1))
    out = model(torch.randn(2, 16, 9, 11))
    assert out.heatmap.shape == (2, 1, 9, 11) and out.size.shape == (2, 2, 9, 11)
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(2, 9, 11))
    model.save_pretrained(tmp_path / "h")
    back = CenterHead.from_pretrained(tmp_path / "h")
    assert back.config == model.config
    torch.testing.assert_close(back(torch.ones(1, 16, 4, 4)).heatmap, model.eval()(torch.ones(1, 16, 4, 4)).heatmap)
    with pytest.raises(ValueError, match="features must be"):
        model(torch.randn(1, 15, 4, 4))
    with pytest.raises(ValueError, match="not a checkpoint folder"):
        CenterHead.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="input must be"):
        DetectorConfig(in_channels=4, input="pixels")
    with pytest.raises(ValueError, match="dilations must be"):
        DetectorConfig(in_channels=4, dilations=(1, 0))


@pytest.mark.parametrize("dilations, sees", [((1, 2, 4, 8), True), ((1,), False)])
def test_head_receptive_field_spans_a_person(dilations, sees):
    """Four dilated blocks reach 15 cells (120 px) either side of a cell, four plain 3x3 blocks 4:
    a cell 12 cells away moves the centre's heatmap through the convolutions, or only through
    GroupNorm's statistics (a gradient two orders of magnitude below the centre's own)."""
    torch.manual_seed(0)
    model = CenterHead(DetectorConfig(in_channels=4, dim=16, depth=4, embed_dim=4, dilations=dilations)).eval()
    x = torch.randn(1, 4, 41, 41, requires_grad=True)
    model(x).heatmap[0, 0, 20, 20].backward()
    grad = x.grad[0].abs().sum(0)  # (41, 41)
    ratio = (grad[20, 32] / grad[20, 20]).item()
    assert (ratio > 0.01) == sees, ratio


# ---------------------------------------------------------------- tokens of the sample clip


@pytest.fixture(scope="module")
def sprite_cache(tmp_path_factory):
    """Sprites on the sample clip (two parts, never mixed), tokenized with the shipped codec."""
    from mptvc_latents.codec import MPTVC

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("heads") / "cache"
    clip = read_video(SAMPLE)
    model = MPTVC.from_pretrained()
    cache_sequence(model, paste_sprites(clip.frames[:32], 3, seed=0, name="a"), root, "train")
    cache_sequence(model, paste_sprites(clip.frames[32:], 3, seed=1, name="b"), root, "test")
    return root


def test_cache_holds_tokens_decodes_and_rates(sprite_cache):
    seq = load_cached(sprite_cache, "train")
    assert seq.meta["token_grid"] == [8, 18, 40]  # 136 px pad to 144: 18 rows of cells
    assert [s.shape[-1] for s in seq.symbols(2)] == [4, 12, 24]
    assert seq.decoded(0).shape == (32, 136, 320, 3)
    bpp = seq.meta["bpp"]
    assert 0 < bpp[0] < bpp[1] < bpp[2]
    gs = grid_sequence(seq, "tokens", 1)
    assert gs.features.shape == (8, 16, 18, 40) and len(gs.boxes) == 8 and all(len(b) == 3 for b in gs.boxes)
    with pytest.raises(ValueError, match="No cached sequence"):
        load_cached(sprite_cache, "nope")
    with pytest.raises(ValueError, match="input must be"):
        grid_sequence(seq, "pixels", 0)


def test_token_dataset_items_give_the_same_features(sprite_cache):
    from heads.experiment import codec_levels
    from heads.features import item_features
    from mptvc_latents.store import TokenDataset

    fsq_levels, _ = codec_levels(sprite_cache)
    ds = TokenDataset(sprite_cache / "tokens.zarr", k_max=1, window=4, clips=["train"])
    x = item_features(ds[1], fsq_levels)  # token frames 4..7
    expected = grid_sequence(load_cached(sprite_cache, "train"), "tokens", 1).features[4:8]
    torch.testing.assert_close(x, expected)


@pytest.mark.slow
def test_a_short_training_run_finds_the_pasted_sprites(sprite_cache, tmp_path):
    seq = grid_sequence(load_cached(sprite_cache, "train"), "tokens", 2)
    model = new_head(sprite_cache, "tokens", 2, dim=32, depth=2)
    history = train_head(model, [seq], TrainConfig(steps=120, batch=4, crop=24, lr=3e-3), log_every=0)
    first, last = np.mean([h["total"] for h in history[:10]]), np.mean([h["total"] for h in history[-10:]])
    assert last < 0.6 * first
    result = evaluate_head(model, load_cached(sprite_cache, "train"), tmp_path)
    assert result["detection"]["AP50"] > 0.5, result["detection"]
    assert result["tracking"]["bytetrack+emb"]["MOTA"] > 0.3, result["tracking"]
    tracks = read_mot(tmp_path / "train.bytetrack+emb.txt")
    assert tracks.shape[1] == 7 and tracks[:, 0].max() <= 8


def test_run_experiment_refuses_to_evaluate_on_training_data(sprite_cache, tmp_path):
    with pytest.raises(ValueError, match="must not be among the training"):
        run_experiment(sprite_cache, ["train"], "train", "tokens", 0, TrainConfig(steps=1), tmp_path)


def test_run_experiment_writes_a_result(sprite_cache, tmp_path):
    result = run_experiment(sprite_cache, ["train"], "test", "decoded", 0, TrainConfig(steps=3, crop=16), tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["prefix"] == "preview" and saved["bpp"] == pytest.approx(
        load_cached(sprite_cache, "test").meta["bpp"][0]
    )
    assert set(saved["tracking"]) == {"bytetrack+emb", "bytetrack-iou"} and result["train"]["steps"] == 3
    assert (tmp_path / "head" / "model.safetensors").is_file()


def test_report_tables_every_run(tmp_path):
    from heads.report import write_report

    track = {"HOTA": 0.5, "MOTA": 0.25, "IDF1": 0.75, "IDSW": 2}
    runs = [{"input": i, "prefix": p, "bpp": b, "train_s": 10.0, "detection": {"mAP": 0.1, "AP50": 0.3},
             "tracking": {"bytetrack+emb": track}}
            for i, p, b in (("tokens", "full", 0.238), ("source", "source", None))]  # fmt: skip
    write_report(runs, tmp_path / "r.json")
    md = (tmp_path / "r.md").read_text()
    assert "| tokens (frozen) | full | - | 0.2380 | 10.0 | 30.0 | 50.0 | 25.0 | 75.0 | 2 | 10 |" in md
    assert "| source pixels (no codec) | source | - | - |" in md
    scenes = {"a": {"detection": {"AP50": 0.5}}, "b": {"detection": {"AP50": 0.125}}}
    write_report([{**runs[0], "scenes": scenes, "params": 152341}], tmp_path / "s.json")
    md = (tmp_path / "s.md").read_text()
    assert "| mAP | AP50 | AP50 a | AP50 b | HOTA |" in md
    assert "| tokens (frozen) | full | 152k | 0.2380 | 10.0 | 30.0 | 50.0 | 12.5 | 50.0 |" in md
    assert len(json.loads((tmp_path / "r.json").read_text())["results"]) == 2
    with pytest.raises(ValueError, match="no results"):
        write_report([], tmp_path / "e.json")


# ---------------------------------------------------------------- command line


def test_cli_errors_are_one_line(sprite_cache, tmp_path, capsys):
    assert (
        cli.main(
            [
                "heads",
                "eval",
                "--cache",
                str(sprite_cache),
                "--head",
                str(tmp_path),
                "--key",
                "test",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "is not a checkpoint folder" in capsys.readouterr().err
    assert cli.main(["heads", "train", "--cache", str(sprite_cache), "--train", "nope", "--out", str(tmp_path)]) == 2
    assert "No cached sequence 'nope'" in capsys.readouterr().err
    assert cli.main(["heads", "prepare", "--data", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
    assert "is not a MOTChallenge sequence folder" in capsys.readouterr().err
    assert cli.main(["heads", "detect", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "d.txt")]) == 2
    assert "no video file or frame folder" in capsys.readouterr().err
    assert cli.main(["heads", "detect", str(tmp_path), "--out", str(tmp_path / "d.txt")]) == 2
    assert "holds no frames" in capsys.readouterr().err
    assert cli.main(["heads", "detect", str(SAMPLE), "--out", str(tmp_path / "d.txt"), "--k-max", "5"]) == 2
    assert "No head ships for k=5" in capsys.readouterr().err
    assert not (tmp_path / "d.txt").exists()


def test_cli_train_then_eval(sprite_cache, tmp_path):
    assert cli.main(["heads", "train", "--cache", str(sprite_cache), "--train", "train", "--input", "tokens",
                     "--k", "0", "--steps", "2", "--crop", "16", "--out", str(tmp_path)]) == 0  # fmt: skip
    assert cli.main(["heads", "eval", "--cache", str(sprite_cache), "--head", str(tmp_path / "head"), "--key", "test",
                     "--out", str(tmp_path)]) == 0  # fmt: skip
    result = json.loads((tmp_path / "eval-test.json").read_text())
    assert result["scenes"]["test"]["detection"] == result["detection"]  # one scene: pooled = its own
    assert 0 <= result["detection"]["mAP"] <= 1 and (tmp_path / "test.bytetrack+emb.txt").is_file()
    head = str(tmp_path / "head")
    assert (
        cli.main(
            [
                "heads",
                "eval",
                "--cache",
                str(sprite_cache),
                "--head",
                head,
                head,
                "--key",
                "test",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert "| tokens (frozen) | preview |" in (tmp_path / "m" / "results-test.md").read_text()


def test_cli_training_flags_left_out_take_the_train_config_defaults():
    from heads.cli import _train_config

    parser = cli.build_parser()
    base = ["heads", "train", "--cache", "c", "--train", "a", "--out", "o"]
    assert _train_config(parser.parse_args(base)) == TrainConfig()
    assert _train_config(parser.parse_args([*base, "--steps", "7", "--lr", "0.01"])) == TrainConfig(steps=7, lr=0.01)
    with pytest.raises(ValueError, match="TrainConfig.crop must be an integer of at least 4"):
        _train_config(parser.parse_args([*base, "--crop", "2"]))


# ---------------------------------------------------------------- labelled videos -> mptvc tokenize -> heads


def test_mot_rows_keep_pedestrians_of_mot17_and_drop_ignore_regions():
    from heads.data import mot_rows

    mot17 = np.array([[1, 1, 0, 0, 5, 9, 1, 1, 0.9], [1, 2, 0, 0, 5, 9, 0, 1, 0.9], [1, 3, 0, 0, 5, 9, 1, 7, 1.0]])
    assert mot_rows(mot17)[:, 1].tolist() == [1]  # consider=0 and class 7 (static person) dropped
    mot15 = np.array([[1, 1, 0, 0, 5, 9, 1, -1, -1, -1], [1, 2, 0, 0, 5, 9, 0, -1, -1, -1]])
    assert mot_rows(mot15)[:, 1].tolist() == [1]
    assert mot_rows(np.array([[2, 4, 1, 2, 3, 4]])).tolist() == [[2, 4, 1, 2, 3, 4]]
    with pytest.raises(ValueError, match="at least 6 columns"):
        mot_rows(np.zeros((1, 4)))


def test_labelled_video_reads_back_exactly(tmp_path):
    from heads.labels import labels_for, read_labels, write_labelled_video
    from mptvc_latents.video import read_video as read

    seq = paste_sprites(read_video(SAMPLE, max_frames=6).frames, 2, seed=4, fps=7.0)
    path = write_labelled_video(seq, tmp_path, "clip")
    clip = read(path)
    np.testing.assert_array_equal(clip.frames, seq.frames)
    assert clip.fps == pytest.approx(7.0)
    boxes = seq.boxes[np.lexsort((seq.boxes[:, 1], seq.boxes[:, 0]))]  # the file is sorted by frame, then id
    np.testing.assert_allclose(read_labels(labels_for(path)), boxes, atol=0.006)  # written with 2 decimals
    assert labels_for(path, tmp_path / "labels") == tmp_path / "labels" / "clip.txt"
    (tmp_path / "bad.txt").write_text("1,2,three\n")
    with pytest.raises(ValueError, match="not a MOTChallenge text file"):
        read_labels(tmp_path / "bad.txt")
    (tmp_path / "zero.txt").write_text("0,1,1,1,4,4\n")
    with pytest.raises(ValueError, match="counted from 1"):
        read_labels(tmp_path / "zero.txt")
    with pytest.raises(ValueError, match="no label file"):
        read_labels(tmp_path / "none.txt")


@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory):
    """Two labelled sprite videos, tokenized by `mptvc tokenize`, cached with decoded prefixes and bytes."""
    from heads.cache import cache_from_store
    from heads.labels import write_labelled_video
    from mptvc_latents.codec import MPTVC

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("labelled")
    frames = read_video(SAMPLE).frames
    write_labelled_video(paste_sprites(frames[:20], 3, seed=5), root / "videos", "first")
    write_labelled_video(paste_sprites(frames[40:44], 2, seed=6), root / "videos", "short")
    assert cli.main(["tokenize", str(root / "videos"), "--out", str(root / "tokens.zarr")]) == 0
    cache_from_store(MPTVC.from_pretrained(), root / "tokens.zarr", root / "cache", rate=True)
    return root


def test_cache_from_a_tokenized_store_reads_tokens_through_the_dataset(labelled_store):
    from heads.cache import load_cached
    from heads.features import token_features
    from heads.labels import read_labels
    from mptvc_latents.codec import MPTVC

    seq = load_cached(labelled_store / "cache", "first")
    assert seq.meta["frames"] == 20 and seq.meta["token_grid"][0] == 6 and seq.clip.startswith("first-")
    model = MPTVC.from_pretrained()
    video = np.load(labelled_store / "cache" / "first.source.npy")
    tokens = model.encode(video, 25.0)
    gs = grid_sequence(seq, "tokens", 1)
    levels = [lv.fsq_levels for lv in model.config.levels]
    torch.testing.assert_close(gs.features, token_features(tokens.symbols[:2], levels))
    labels = read_labels(labelled_store / "videos" / "first.txt")
    assert gs.refs.tolist() == [1, 5, 9, 13, 17]
    np.testing.assert_allclose(gs.boxes[2], labels[labels[:, 0] == 10, 1:6])
    np.testing.assert_array_equal(seq.decoded(0), model.decode(tokens, k_max=0))
    assert 0 < seq.meta["bpp"][0] < seq.meta["bpp"][2]


def test_cache_from_store_refuses_labels_past_the_clip(labelled_store, tmp_path):
    from heads.cache import cache_from_store
    from mptvc_latents.codec import MPTVC

    (tmp_path / "first.txt").write_text("21,1,10,10,5,5,1,-1,-1,-1\n")
    (tmp_path / "short.txt").write_text("")
    with pytest.raises(ValueError, match="labels reach frame 21 but the clip has 20 frames"):
        cache_from_store(MPTVC.from_pretrained(), labelled_store / "tokens.zarr", tmp_path / "c", tmp_path, False)


def test_training_takes_clips_of_a_single_token_frame(labelled_store):
    from heads.cache import load_cached

    short = grid_sequence(load_cached(labelled_store / "cache", "short"), "tokens", 0)
    assert short.num_frames == 1
    model = new_head(load_cached(labelled_store / "cache", "short"), "tokens", 0, dim=16, depth=1)
    history = train_head(model, [short], TrainConfig(steps=3, crop=8, warmup=1), log_every=0)
    assert all(h["embedding"] == 0 for h in history) and np.isfinite([h["total"] for h in history]).all()


def _random_head(k: int = 2, **config) -> CenterHead:
    torch.manual_seed(0)
    return CenterHead(DetectorConfig(in_channels=(4, 16, 40)[k], dim=16, depth=1, k=k, **config))


def test_detect_people_numbers_frames_and_scales_boxes_to_the_input(tmp_path):
    from heads.data import Sequence
    from heads.detect import FrameSource, _shrink, detect_people
    from heads.infer import detect
    from mptvc_latents.codec import MPTVC

    codec = MPTVC.from_pretrained()
    small = read_video(SAMPLE, max_frames=10).frames  # (10, 136, 320, 3)
    big = rescale(Sequence("s", small, 25.0, np.zeros((0, 6))), 2.0).frames  # (10, 272, 640, 3)
    head = _random_head(work_height=136)
    found = list(detect_people(FrameSource(iter([big]), 25.0, 10), head, codec, threshold=0.05))
    assert [d.frame for d in found] == [2, 6, 10]  # reference frames 4t + 1, counted from 1
    coded = next(_shrink(iter([big]), 136))
    levels = [lv.fsq_levels for lv in codec.config.levels]
    expected = detect(head, token_features(codec.encode(coded, 25.0).symbols, levels), threshold=0.05)
    for got, want in zip(found, expected[:3], strict=True):  # the rest cover end padding
        np.testing.assert_allclose(got.boxes, want.boxes * 2, rtol=1e-5)
        np.testing.assert_allclose(got.scores, want.scores)
    with pytest.raises(ValueError, match="not k=1"):
        next(detect_people(FrameSource(iter([small]), 25.0, 10), head, codec, k=1))
    with pytest.raises(ValueError, match="another codec checkpoint"):
        next(detect_people(FrameSource(iter([small]), 25.0, 10), _random_head(codec="0" * 64), codec))


def test_cli_detect_and_track_write_mot_rows_of_a_frame_folder(tmp_path):
    import av

    frames = read_video(SAMPLE, max_frames=9).frames
    folder = tmp_path / "img1"
    folder.mkdir()
    for i, f in enumerate(frames):
        av.VideoFrame.from_ndarray(f, format="rgb24").to_image().save(folder / f"{i + 1:06d}.png")
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nframeRate=10\n")
    _random_head(k=0).save_pretrained(tmp_path / "head")
    head = str(tmp_path / "head")
    assert cli.main(["heads", "detect", str(folder), "--out", str(tmp_path / "d.txt"), "--head", head,
                     "--threshold", "0.05"]) == 0  # fmt: skip
    lines = (tmp_path / "d.txt").read_text().splitlines()
    assert lines and all(len(line.split(",")) == 10 and line.split(",")[1] == "-1" for line in lines)
    rows = read_mot(tmp_path / "d.txt")
    assert set(rows[:, 0].astype(int)) <= {2, 6} and (rows[:, 6] >= 0.05).all()
    assert cli.main(["heads", "track", str(folder), "--out", str(tmp_path / "t.txt"), "--head", head]) == 0
    tracks = read_mot(tmp_path / "t.txt")
    assert len(tracks) == 0 or (tracks[:, 1] >= 1).all()
    assert cli.main(["heads", "detect", str(folder), "--out", str(tmp_path / "e.txt"), "--head", head,
                     "--k-max", "2"]) == 2  # fmt: skip
    video = ["heads", "detect", str(SAMPLE), "--out", str(tmp_path / "v.txt"), "--head", head, "--threshold", "0.05"]
    assert cli.main(video) == 0
    assert set(read_mot(tmp_path / "v.txt")[:, 0].astype(int)) <= set(range(2, 64, 4))  # 64 frames: 2, 6, ..., 62


def test_a_source_pixel_head_runs_on_decoded_prefixes(labelled_store):
    from heads.cache import load_cached
    from heads.experiment import evaluate_scenes

    first = load_cached(labelled_store / "cache", "first")
    model = new_head(first, "source", 0, dim=16, depth=1)
    on_decoded = evaluate_scenes(model, [first], input="decoded", k=1)
    assert (on_decoded["input"], on_decoded["k"]) == ("decoded", 1)
    assert on_decoded["bpp"] == pytest.approx(first.meta["bpp"][1])
    assert evaluate_scenes(model, [first])["bpp"] is None  # source pixels: no codec
    with pytest.raises(ValueError, match="cannot be evaluated on decoded"):
        evaluate_scenes(new_head(first, "tokens", 0, dim=16, depth=1), [first], input="decoded", k=0)


def test_ship_head_halves_the_weights_and_loads_strictly(tmp_path):
    from heads.detect import ship_head

    head = _random_head(k=1, work_height=480, codec="ab" * 32)
    head.save_pretrained(tmp_path / "trained")
    folder = ship_head(tmp_path / "trained", tmp_path / "person-k1")
    shipped = CenterHead.from_pretrained(folder)
    assert shipped.config == head.config
    for (name, a), b in zip(head.state_dict().items(), shipped.state_dict().values(), strict=True):
        assert b.dtype == torch.float32, name
        torch.testing.assert_close(b, a.half().float())
    size = (folder / "model.safetensors").stat().st_size
    assert size < 0.6 * (tmp_path / "trained" / "model.safetensors").stat().st_size
    _random_head(k=1).save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match="Only token heads that record their codec digest"):
        ship_head(tmp_path / "bare", tmp_path / "x")


def test_calibration_picks_the_threshold_of_the_best_f1_on_training_clips():
    from heads.calibrate import calibrated_tracker, fit_threshold
    from heads.detector import HeadOutput
    from heads.train import GridSequence

    class Oracle(CenterHead):
        """Peaks of 0.8 at the true centres, 0.5 at as many wrong cells: the best threshold is above 0.5."""

        def forward(self, features):
            tg = encode_targets(boxes, features.shape[-2:])
            logit = torch.full((1, 1, *features.shape[-2:]), -9.0)
            offset, size = torch.zeros(1, 2, *features.shape[-2:]), torch.zeros(1, 2, *features.shape[-2:])
            for (i, j), o, s in zip(tg.centres, tg.offset, tg.size, strict=True):
                logit[0, 0, i, j] = float(torch.logit(torch.tensor(0.8)))
                logit[0, 0, i + 5, j] = 0.0  # a false peak of 0.5 well apart from the true one
                offset[0, :, i, j], size[0, :, i, j] = torch.from_numpy(o), torch.from_numpy(s)
            return HeadOutput(logit, offset, size, torch.zeros(1, 2, *features.shape[-2:]))

    boxes = np.array([[1, 20.0, 10.0, 16.0, 30.0], [2, 120.0, 12.0, 16.0, 30.0]])
    seq = GridSequence("s", torch.zeros(2, 4, 20, 24), [boxes, boxes], np.array([1, 5]))
    threshold, f1 = fit_threshold(Oracle(DetectorConfig(in_channels=4, dim=8, depth=1)), [seq])
    assert 0.5 < threshold <= 0.8 and f1 == pytest.approx(1.0)
    cfg = calibrated_tracker(0.3)
    assert (cfg.high, cfg.new_track, cfg.low) == pytest.approx((0.3, 0.4, 0.1))
    with pytest.raises(ValueError, match="lies in"):
        calibrated_tracker(1.5)


def test_the_shipped_heads_load_strictly_and_read_the_shipped_codec():
    from heads.detect import CHECKPOINTS, pretrained_head
    from mptvc_latents.codec import MPTVC

    digest = MPTVC.from_pretrained().weights_digest()
    for k in (0, 1, 2):
        head = pretrained_head(k)
        cfg = head.config
        assert (cfg.input, cfg.k, cfg.in_channels, cfg.work_height) == ("tokens", k, (4, 16, 40)[k], 480)
        assert cfg.codec == digest, "the shipped codec changed: retrain the heads on its tokens (docs/heads.md)"
        assert (CHECKPOINTS / f"person-k{k}" / "model.safetensors").stat().st_size < 400_000
        assert not head.training and all(p.dtype == torch.float32 for p in head.parameters())
        assert 0 < cfg.threshold < 1 and (CHECKPOINTS / f"person-k{k}" / "README.md").is_file()
