"""The named codec configurations: the parameter counts the model card quotes, and the shipped preset."""

from mptvc_latents.codec import MPTVC
from mptvc_latents.presets import PUBLISHED_PARAMETERS, preset


def _counts(model: MPTVC) -> tuple[int, int]:
    """(backbone, entropy) parameters: the hyperpriors are the entropy model, the rest the backbone."""
    entropy = sum(p.numel() for name, p in model.named_parameters() if ".hyperprior." in name)
    return sum(p.numel() for p in model.parameters()) - entropy, entropy


def test_the_full_preset_has_the_counts_the_model_card_quotes_and_its_backbone_matches_the_published_one():
    full = preset("mptvc-full")
    backbone, entropy = _counts(MPTVC(full))
    assert (backbone, entropy) == (4_357_784, 383_840)  # MODEL_CARD.md, presets.py
    assert abs(backbone / PUBLISHED_PARAMETERS["backbone"] - 1) < 0.01
    # Tiles blend seamlessly: the overlap is at least twice the deepest transformer's reach plus a token.
    assert all(
        overlap // full.patch >= 2 * reach + 1 for overlap, reach in zip(full.tile_overlap, full.reach, strict=True)
    )


def test_the_cpu_preset_still_builds_the_shipped_checkpoint():
    shipped = MPTVC.from_pretrained().state_dict()
    built = MPTVC(preset("mptvc-cpu"))
    assert _counts(built) == (2_908_184, 170_776)
    assert {k: v.shape for k, v in built.state_dict().items()} == {
        k: v.shape for k, v in shipped.items() if k in built.state_dict()
    }
