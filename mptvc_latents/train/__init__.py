"""Training MPT-VC on CPU or GPU, in one process or many: clips, the rate-distortion loss, the curriculum, the loop."""

from mptvc_latents.train.data import Augment, ClipStream, Stage, probe_videos
from mptvc_latents.train.loop import TrainConfig, Trainer
from mptvc_latents.train.loss import RDLoss, rd_loss

__all__ = ["Augment", "ClipStream", "RDLoss", "Stage", "TrainConfig", "Trainer", "probe_videos", "rd_loss"]
