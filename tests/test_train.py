"""Training: a few real steps on the sample clip, the curriculum, checkpoints and resuming."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mptvc_latents.codec import MPTVC
from mptvc_latents.train import TrainConfig, Trainer
from mptvc_latents.train.data import Augment, Stage, VideoEntry, plan_crops
from mptvc_latents.train.export import export_checkpoint, training_card
from mptvc_latents.train.loop import training_autocast
from tests._tiny import tiny_train_config


def test_training_runs_the_curriculum_and_resumes_exactly_where_it_stopped(tmp_path):
    torch.set_num_threads(1)
    config = tiny_train_config(tmp_path)
    trainer = Trainer(config)
    trainer.fit(progress=False)
    run = Path(config.run_dir)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert [r["phase"] for r in records] == [0, 1, 2, 3, 3]
    assert [len(r["psnr"]) for r in records] == [1, 2, 3, 3, 3]  # level k alone decodes levels 0..k
    assert all(np.isfinite(r["loss"]) and r["bpp"][-1] > 0 for r in records)
    assert (run / "checkpoint" / "model.safetensors").is_file() and (run / "checkpoint" / "trainer.pt").is_file()

    # Level 0 was frozen after phase 0: its encoder did not change in phase 1.
    saved = MPTVC.from_pretrained(run / "checkpoint")
    assert all(
        torch.equal(a, b) for a, b in zip(saved.state_dict().values(), trainer.model.state_dict().values(), strict=True)
    )

    # A crash after step 5 left a record of step 6 that no checkpoint holds: resuming drops it.
    with open(run / "log.jsonl", "a") as f:
        f.write(json.dumps({**records[-1], "step": 6}) + "\n")
    # A longer schedule resumes from step 5 with the optimizer state, not from scratch.
    longer = dataclasses.replace(config, phase_steps=(1, 1, 1, 4))
    resumed = Trainer(longer)
    assert resumed.step == 5
    assert resumed.optimizer.state_dict()["state"], "the optimizer state was restored"
    resumed.fit(progress=False)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6, 7]


def test_single_level_phases_freeze_the_other_levels(tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path))
    frames = Path(trainer.config.run_dir) / "frames"
    assert not frames.exists(), "videos are decoded when a clip first needs them, not up front"
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train_step()  # phase 0: level 0 alone
    assert len(list(frames.glob("*.npy"))) == 2  # the sample clip's frames and scene ids
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".0." in n for n in changed), sorted(changed)[:5]


def test_export_writes_a_half_precision_folder_that_loads_strictly(tmp_path):
    trainer = Trainer(tiny_train_config(tmp_path))
    trainer.save()
    out = export_checkpoint(Path(trainer.config.run_dir) / "checkpoint", tmp_path / "export", tile_overlap=(32, 32))
    loaded = MPTVC.from_pretrained(out)
    assert loaded.config.tile_overlap == (32, 32)
    assert (out / "model.safetensors").stat().st_size < (
        Path(trainer.config.run_dir) / "checkpoint" / "model.safetensors"
    ).stat().st_size
    with pytest.raises(ValueError, match="can be changed at export"):
        export_checkpoint(out, tmp_path / "bad", levels=())


def test_bad_sources_and_sizes_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file or folder"):
        Trainer(tiny_train_config(tmp_path, sources=(str(tmp_path / "nowhere"),)))
    small = VideoEntry("small.mp4", frames=4, height=16, width=16)
    with pytest.raises(ValueError, match="at least 8 frames of 32x32"):
        plan_crops([small], seed=0, step=0, stage=Stage(0, 1, 8, (32, 32)), augment=Augment())
    with pytest.raises(ValueError, match="at least 8 frames of 512x512"):
        Trainer(tiny_train_config(tmp_path, stages=(Stage(3, 2, 8, (512, 512)),)))
    with pytest.raises(ValueError, match="does not exist"):
        Trainer(tiny_train_config(tmp_path, preset=str(tmp_path / "missing.json")))


def test_export_command_writes_the_folder_and_its_training_record(tmp_path):
    from mptvc_latents.cli import main

    trainer = Trainer(tiny_train_config(tmp_path))
    trainer.fit(progress=False)
    out = tmp_path / "shipped"
    assert main(["export", trainer.config.run_dir, str(out), "--tile-overlap", "32", "32"]) == 0
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 5 and record["last_record"]["step"] == 5 and record["wall_hours"] >= 0
    assert MPTVC.from_pretrained(out).config.tile_overlap == (32, 32)
    assert main(["export", str(tmp_path / "not-a-run"), str(tmp_path / "x")]) == 2


def test_a_new_run_can_start_from_exported_weights_and_continue_the_schedule(tmp_path):
    first = Trainer(tiny_train_config(tmp_path))
    first.fit(progress=False)
    shipped = export_checkpoint(Path(first.config.run_dir) / "checkpoint", tmp_path / "shipped", card={"steps": 5})
    config = tiny_train_config(tmp_path, run_dir=str(tmp_path / "next"), init=str(shipped), phase_steps=(1, 1, 1, 4))
    trainer = Trainer(config)
    assert trainer.step == 5 and not trainer.optimizer.state_dict()["state"]
    weights = MPTVC.from_pretrained(shipped).state_dict()
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.state_dict().values(), weights.values(), strict=True))
    trainer.fit(progress=False)
    assert trainer.step == 7
    # Its export carries the training of the folder it started from: the hours add up.
    card = training_card(config.run_dir)
    assert card["steps"] == 7 and card["init"]["steps"] == 5 and card["init"]["folder"] == str(shipped)
    assert card["wall_hours"] == card["wall_hours_this_run"]  # the init folder's card recorded no hours
    (shipped / "training.json").write_text(json.dumps({"steps": 5, "wall_hours": 1.5}))
    assert training_card(config.run_dir)["wall_hours"] == pytest.approx(1.5 + card["wall_hours_this_run"], abs=0.01)


def test_warmup_cosine_rises_linearly_then_falls_to_the_floor():
    from mptvc_latents.train.schedule import warmup_cosine

    lrs = [warmup_cosine(step, 1.0, warmup=4, total=12, min_lr=0.1) for step in range(14)]
    assert lrs[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lrs[8] == pytest.approx(0.55) and lrs[12] == lrs[13] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False)) and all(type(lr) is float for lr in lrs)
    assert warmup_cosine(0, 2.0, warmup=0, total=10) == 2.0


def test_atomic_folder_swaps_whole_folders_and_a_crash_between_its_renames_leaves_the_old_one(tmp_path, monkeypatch):
    from mptvc_latents.files import atomic_folder, completed_folder

    target = tmp_path / "checkpoint"
    assert completed_folder(target) is None
    with atomic_folder(target) as tmp:
        (tmp / "weights").write_text("1")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "weights").write_text("2")
        raise RuntimeError("a failure while writing")
    assert (target / "weights").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["checkpoint"]

    rename = Path.rename

    def killed_before_the_second_rename(self, target_path):
        if self.name.endswith(".tmp"):
            raise KeyboardInterrupt
        return rename(self, target_path)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "rename", killed_before_the_second_rename)
        with pytest.raises(KeyboardInterrupt), atomic_folder(target) as tmp:
            (tmp / "weights").write_text("3")
    assert not target.exists() and (completed_folder(target) / "weights").read_text() == "1"
    with atomic_folder(target) as tmp:
        (tmp / "weights").write_text("4")
    assert completed_folder(target) == target and (target / "weights").read_text() == "4"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_a_resumed_run_ends_with_the_same_weights_as_one_that_never_stopped(tmp_path):
    torch.set_num_threads(1)
    augment = {"time_strides": (1, 2), "rescale": (0.75, 1.0), "autocast": "off", "checkpoint_every": 100, "workers": 1}
    straight = Trainer(tiny_train_config(tmp_path, run_dir=str(tmp_path / "straight"), **augment))
    straight.fit(progress=False)

    config = tiny_train_config(tmp_path, run_dir=str(tmp_path / "stopped"), **augment)
    stopped = Trainer(config)
    for _ in range(3):
        stopped.train_step()
    stopped.save()
    stopped.close()
    # A crash between the two renames of the checkpoint swap leaves only checkpoint.old.
    run = Path(config.run_dir)
    (run / "checkpoint").rename(run / "checkpoint.old")
    resumed = Trainer(config)
    assert resumed.step == 3
    resumed.fit(progress=False)
    assert (run / "checkpoint").is_dir() and not (run / "checkpoint.old").exists()
    final = [MPTVC.from_pretrained(Path(c.config.run_dir) / "checkpoint").state_dict() for c in (straight, resumed)]
    assert all(torch.equal(a, b) for a, b in zip(final[0].values(), final[1].values(), strict=True))


def test_stages_change_the_clips_at_their_step_and_autocast_reaches_the_transformers(tmp_path):
    config = tiny_train_config(tmp_path, stages=(Stage(3, 1, 4, (48, 64)),), autocast="bf16")
    trainer = Trainer(config)
    shapes = []
    for _ in range(5):
        shapes.append(tuple(trainer._next_batch()[0].shape))
        trainer.step += 1
    assert shapes == [(2, 3, 8, 32, 32)] * 3 + [(1, 3, 4, 48, 64)] * 2
    transformers = [m for m in trainer.model.modules() if hasattr(m, "autocast")]
    assert transformers and all(m.autocast == torch.bfloat16 for m in transformers)
    assert training_autocast("off", torch.device("cpu")) is None
    assert training_autocast("auto", torch.device("cpu")) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="autocast must be one of"):
        tiny_train_config(tmp_path, autocast="fp8")
    with pytest.raises(ValueError, match="increasing steps"):
        tiny_train_config(tmp_path, stages=(Stage(5, 2, 8, (32, 32)), Stage(5, 2, 8, (64, 64))))
    saved = json.loads((Path(config.run_dir) / "train_config.json").read_text())
    assert TrainConfig.from_dict(saved) == config
