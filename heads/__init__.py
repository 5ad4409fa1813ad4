"""Detection and multi-object tracking heads trained on frozen MPT-VC tokens (docs/heads.md).

Built only on the public API of `mptvc_latents`::

    data / paste / synthetic   annotated sequences: MOT/OTB readers, exact variants, copy-paste, sprites
    cache                      tokenize once: TokenStore + decoded prefixes + coded bytes per level
    features / targets         head inputs on the token grid; CenterNet targets and peak decoding
    detector / train / infer   CenterHead, its losses and training loop, whole-grid inference
    tracker / mot              ByteTrack-style association, MOTChallenge files
    evaluate / experiment      pycocotools mAP and TrackEval HOTA/MOTA/IDF1; train+evaluate runs
    report / cli               results tables; `mptvc heads cache|train|eval|bench`
"""
