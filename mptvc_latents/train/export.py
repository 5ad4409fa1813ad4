"""Export a training checkpoint as the compact hub-style folder the package ships.

Float weights are stored as float16 (half the size; the model computes in fp32 after
loading, and every coding decision is made from the loaded weights, so encoder and
decoder agree). Integer CDF tables are stored as they are.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import torch

from mptvc_latents.codec import MPTVC
from mptvc_latents.files import atomic_folder, completed_folder
from mptvc_latents.train.ema import load_ema_weights

log = logging.getLogger(__name__)

__all__ = ["export_checkpoint", "training_card"]


def training_card(run_dir: str | Path) -> dict:
    """What a run did, from its folder: the recipe, the step reached, wall-clock hours and the last log record.

    A run started from exported weights (``TrainConfig.init``) continues that folder's training:
    its ``training.json``, when there is one, is kept under ``"init"`` and ``wall_hours`` is the
    sum of both (``wall_hours_this_run`` is this run's share), so a chain of resumes adds up.
    """
    run = Path(run_dir)
    ckpt = completed_folder(run / "checkpoint")
    if ckpt is None:
        raise ValueError(f"The run folder {str(run)!r} has no checkpoint.")
    state = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=True)
    step = int(state["step"])
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if r["step"] <= step]
    # Wall-clock time between consecutive records, leaving out gaps over 10 minutes (restarts).
    times = [r["time"] for r in records]
    busy = sum(b - a for a, b in itertools.pairwise(times) if b - a < 600)
    config = json.loads((run / "train_config.json").read_text())
    card = {
        "steps": step,
        "wall_hours": round(busy / 3600, 2),
        "train_config": config,
        "last_record": records[-1] if records else None,
    }
    init_record = Path(config["init"]) / "training.json" if config.get("init") else None
    if init_record is not None and init_record.is_file():
        before = json.loads(init_record.read_text())
        card["wall_hours_this_run"] = card["wall_hours"]
        card["wall_hours"] = round(float(before.get("wall_hours", 0.0)) + busy / 3600, 2)
        card["init"] = {"folder": config["init"], **before}
    return card


def export_checkpoint(
    src: str | Path, dst: str | Path, card: dict | None = None, *, ema: bool = False, **inference: Any
) -> Path:
    """Load ``src`` strictly, cast float weights to float16 and save to ``dst`` (replaced).

    ``ema``: export the moving average of the parameters the run kept (``train.ema``, ``mptvc train
    --ema DECAY``) instead of the parameters of the last step; the card records it (``"weights"``).
    ``inference`` replaces config fields that only affect inference, such as ``tile`` or
    ``tile_overlap`` (never anything that changes the weights' shapes); ``CodecConfig`` checks the values.
    """
    model = MPTVC.from_pretrained(src)
    if ema:
        updates = load_ema_weights(model, src)
        log.info("exporting the moving average of the parameters (%d updates)", updates)
        if card is not None:
            card = {**card, "weights": {"ema_updates": updates}}
    if inference:
        allowed = {"tile", "tile_overlap", "chunk_frames"}
        if set(inference) - allowed:
            raise ValueError(
                f"Only {sorted(allowed)} can be changed at export, not {sorted(set(inference) - allowed)}."
            )
        tuned = MPTVC(dataclasses.replace(model.config, **inference))
        tuned.load_state_dict(model.state_dict(), strict=True)
        model = tuned
    for p in model.parameters():
        p.data = p.data.to(torch.float16)
    dst = Path(dst)
    with atomic_folder(dst) as tmp:  # a crash leaves the previous export (or none), never half of one
        model.save_pretrained(tmp)
        if card is not None:
            (tmp / "training.json").write_text(json.dumps(card, indent=1) + "\n")
        (tmp / "README.md").write_text(
            f"# MPT-VC checkpoint ({model.config.name})\n\n"
            "Hub-style folder: `config.json` (the codec config) and `model.safetensors` (float16 weights and\n"
            "int32 CDF tables), loaded strictly by `MPTVC.from_pretrained`. `training.json` records the run that\n"
            "made it. Data, recipe, hours and results: MODEL_CARD.md at the root of the mptvc-latents repository.\n"
        )
    check = MPTVC.from_pretrained(dst)  # strict round trip in fp32
    log.info(
        "exported %s (%d parameters, digest %s)",
        dst,
        sum(p.numel() for p in check.parameters()),
        check.tables_digest()[:12],
    )
    return dst
