"""The main job on built-in defaults (`make demo`).

Until the codec lands this runs the entropy-coding stage of MPT-VC end to end: a
latent-sized block of FSQ-8 symbols with hyperprior-like scales, coded by the rANS
coder against a bank of 64 discretized-Gaussian tables, decoded back and checked,
with its size against the ideal and its speed.
"""

from __future__ import annotations

import argparse
import logging
import math
import time

import numpy as np

from mptvc_latents.coder import RangeCoder
from mptvc_latents.entropy.cdf import discretized_gaussian_pmf, quantize_pmf, sample_from_tables, scale_table

log = logging.getLogger("mptvc_latents.demo")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=128, help="video frames (latent has frames/4 token frames)")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--channels", type=int, default=16, help="latent channels per token")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    rng = np.random.default_rng(args.seed)
    shape = (args.frames // 4, args.height // 8, args.width // 8, args.channels)
    pmf, _ = discretized_gaussian_pmf(scale_table(0.3, 8.0, 64), 0.0, (-4, 3))
    cdfs = quantize_pmf(pmf)  # FSQ symbols are bounded: the escape keeps the minimal count
    lengths, offsets = np.full(64, cdfs.shape[1]), np.full(64, -4)
    coder = RangeCoder(cdfs, lengths, offsets)
    # Scales vary smoothly over the grid, as a hyperprior's would.
    field = rng.normal(size=shape).cumsum(axis=2) / np.sqrt(shape[2])
    indexes = np.clip(((field - field.min()) / np.ptp(field) * 63).round(), 0, 63).astype(np.int32)
    symbols = sample_from_tables(rng, indexes, cdfs, lengths, offsets)

    t0 = time.perf_counter()
    data = coder.encode(symbols, indexes)
    t1 = time.perf_counter()
    decoded = coder.decode(data, indexes)
    t2 = time.perf_counter()
    if not np.array_equal(decoded, symbols):
        raise SystemExit("The decoded symbols differ from the encoded ones.")
    n = symbols.size
    pixels = args.frames * args.height * args.width
    ideal = coder.ideal_bits(symbols, indexes)
    log.info("latent %s = %d symbols for %d frames of %dx%d", shape, n, args.frames, args.width, args.height)
    log.info("coded %d bytes = %.4f bits/symbol, %.4f bpp", len(data), 8 * len(data) / n, 8 * len(data) / pixels)
    log.info("overhead against the ideal under the integer tables: %+.4f%%", 100 * (8 * len(data) / ideal - 1))
    log.info("encode %.1f Msym/s, decode %.1f Msym/s (one thread), round trip exact", n / (t1 - t0) / 1e6, n / (t2 - t1) / 1e6)


if __name__ == "__main__":
    main()
