"""Training MPT-VC on CPU or GPU: clip data, the rate-distortion loss, the curriculum and the loop."""

from mptvc_latents.train.data import ClipSampler, load_videos
from mptvc_latents.train.loop import TrainConfig, Trainer
from mptvc_latents.train.loss import RDLoss, rd_loss

__all__ = ["ClipSampler", "RDLoss", "TrainConfig", "Trainer", "load_videos", "rd_loss"]
