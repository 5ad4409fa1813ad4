"""Token stores: FSQ symbols of many clips in one zarr v3 group (``docs/token_store.md``).

``tokenize`` fills a store from video files (resumable, bad files skipped), ``detokenize`` decodes
it back to video, ``TokenStore`` reads and writes clips, ``TokenDataset`` feeds them to torch.
"""

from mptvc_latents.formats.token_store import (
    FORMAT,
    VERSION,
    ClipMeta,
    StoreCheckpointError,
    TokenStore,
    clip_key,
    file_sha256,
    weights_digest,
)
from mptvc_latents.store.dataset import TokenDataset
from mptvc_latents.store.engine import TokenizeSummary, detokenize, find_sources, tokenize

__all__ = [
    "FORMAT",
    "VERSION",
    "ClipMeta",
    "StoreCheckpointError",
    "TokenDataset",
    "TokenStore",
    "TokenizeSummary",
    "clip_key",
    "detokenize",
    "file_sha256",
    "find_sources",
    "tokenize",
    "weights_digest",
]
