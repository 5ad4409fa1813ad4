"""Detection and multi-object tracking heads trained on frozen MPT-VC tokens (docs/heads.md).

Built only on the public API of `mptvc_latents`::

    detect                     the shipped pedestrian heads on a video or frame folder: `mptvc heads detect|track`
    labels / scenes            labelled videos (video + MOTChallenge .txt) and the fixed split by scene
    data / paste / synthetic   annotated sequences: MOT/OTB readers, exact variants, copy-paste, sprites
    cache                      the clips of a token store (`mptvc tokenize`) with their boxes, decoded prefixes, bytes
    features / targets         head inputs on the token grid; CenterNet targets and peak decoding
    detector / train / infer   CenterHead, its losses and training loop, whole-grid inference
    tracker / mot              ByteTrack-style association, MOTChallenge files
    evaluate / experiment      pycocotools mAP and TrackEval HOTA/MOTA/IDF1; train+evaluate on several scenes
    report / cli               results tables; `mptvc heads detect|track|prepare|cache|train|eval|bench`
"""
