"""The parameters' moving average (train.ema): its arithmetic, kept across a resume, exported with --ema."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mptvc_latents.codec import MPTVC
from mptvc_latents.train import TrainConfig, Trainer
from mptvc_latents.train.ema import EMA_FILE, ParameterEMA, load_ema_weights
from tests._tiny import SAMPLE, tiny_config


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    codec = tmp_path / "codec.json"
    codec.write_text(json.dumps(tiny_config().to_dict()))
    base = TrainConfig(
        sources=(str(SAMPLE),), run_dir=str(tmp_path / "run"), preset=str(codec), batch=2, frames=8, crop=(32, 32),
        phase_steps=(1, 1, 1, 2), checkpoint_every=100, log_every=1, warmup=1, workers=0, autocast="off", ema=0.9,
    )  # fmt: skip
    return dataclasses.replace(base, **overrides)


def test_the_average_follows_the_warmed_up_decay():
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    ema = ParameterEMA(layer, decay=0.5)
    expected = torch.ones(1, 2)
    for n, value in enumerate([3.0, -1.0, 5.0, 2.0]):
        with torch.no_grad():
            layer.weight.fill_(value)
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.18..., then 0.25 .. capped at 0.5
        expected = d * expected + (1 - d) * value
        ema.update(layer)
    assert ema.updates == 4
    torch.testing.assert_close(ema.shadow["weight"], expected)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="decay must be between 0 and 1"):
            ParameterEMA(layer, bad)


def test_a_resumed_run_keeps_the_average_and_export_ema_writes_it(tmp_path):
    torch.set_num_threads(1)
    straight = Trainer(_config(tmp_path, run_dir=str(tmp_path / "straight")))
    straight.fit(progress=False)
    config = _config(tmp_path, run_dir=str(tmp_path / "stopped"))
    stopped = Trainer(config)
    for _ in range(3):
        stopped.train_step()
    stopped.save()
    stopped.close()
    resumed = Trainer(config)
    assert resumed.ema is not None and resumed.ema.updates == 3
    resumed.fit(progress=False)
    saved = [load_file(str(Path(c.config.run_dir) / "checkpoint" / EMA_FILE)) for c in (straight, resumed)]
    assert saved[0].keys() == saved[1].keys() and int(saved[1]["__updates__"][0]) == 5
    assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])
    # The average is not the last step's weights (it remembers the earlier ones).
    live = dict(resumed.model.named_parameters())
    assert any(not torch.equal(saved[1][k], live[k].detach().float()) for k in live)

    from mptvc_latents.cli import main

    out = tmp_path / "ema-export"
    assert main(["export", config.run_dir, str(out), "--ema"]) == 0
    exported = MPTVC.from_pretrained(out)
    for name, p in exported.named_parameters():
        torch.testing.assert_close(p.detach(), saved[1][name].to(torch.float16).float())
    assert json.loads((out / "training.json").read_text())["weights"] == {"ema_updates": 5}
    # load_ema_weights is what export uses; on a model of other shapes it names the mismatch.
    other = MPTVC(dataclasses.replace(tiny_config(), levels=tiny_config().levels[:2]))
    with pytest.raises(ValueError, match="does not match the model's parameters"):
        load_ema_weights(other, Path(config.run_dir) / "checkpoint")


def test_ema_config_and_a_run_without_one_are_clear_errors(tmp_path):
    for bad in (1.0, -0.1, "0.9"):
        with pytest.raises(ValueError, match="TrainConfig.ema must be 0"):
            _config(tmp_path, ema=bad)
    plain = Trainer(_config(tmp_path, ema=0.0))
    assert plain.ema is None
    plain.fit(progress=False)
    from mptvc_latents.cli import main

    assert main(["export", plain.config.run_dir, str(tmp_path / "x"), "--ema"]) == 2  # no ema.safetensors
    with pytest.raises(ValueError, match="was not trained with an EMA"):
        load_ema_weights(plain.model, Path(plain.config.run_dir) / "checkpoint")
