"""Fuzz the .mptvc reader: any bytes must read cleanly or raise a BitstreamError, nothing else.

    python tests/fuzz_bitstream.py --seconds 20                    # atheris (libFuzzer), if installed
    python tests/fuzz_bitstream.py --seconds 20 --engine random    # pure-Python mutations

Seeds are valid files of a few geometries, whole and cut, in version 2 (scale hyperprior),
version 3 (context entropy model: the config carries ``context``) and version 4 (rate control:
levels and skipped token frames per chunk, with either entropy model). Half of the mutants get their
header CRC re-stamped, so they reach the body parser and the segment table instead of stopping
at the CRC. Every file that reads is checked further: its prefixes, ``inspect_mptvc``, and a
re-write with ``write_mptvc`` that must read back to the same segments and header.
Exit status 0 means no failure; a failure prints the input (hex) and exits non-zero.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

_LIB = None  # mptvc_latents.formats.container, imported after atheris starts instrumenting


def _config_dict(chunk_frames: int = 8, levels: int = 3, intra_period: int | None = None) -> dict:
    """A codec config; with ``intra_period``, one with a context entropy model (a version 3 file)."""
    from mptvc_latents.config import CodecConfig, ContextConfig, HyperpriorConfig, LevelConfig

    hp = HyperpriorConfig(hyper_channels=4, hidden=16)
    dims = ((16, 2), (16, 3), (32, 4))[:levels]
    level_configs = tuple(LevelConfig(dim=d, heads=1, latent_channels=c, fsq_levels=8, hyperprior=hp) for d, c in dims)
    context = None if intra_period is None else ContextConfig(intra_period=intra_period)
    config = CodecConfig(levels=level_configs, chunk_frames=chunk_frames, patch=8, name="fuzz", context=context)
    return config.to_dict()


def seeds() -> list[bytes]:
    """Valid files (random payloads: the container does not look inside a segment), whole and cut."""
    from mptvc_latents.types import Compressed, Padding, VideoInfo

    rng = np.random.default_rng(0)
    out = []
    for frames, height, width, levels, chunk, intra_period in (
        (5, 20, 30, 3, 8, None),
        (17, 16, 16, 2, 8, None),
        (1, 1, 1, 1, 16, None),
        (40, 33, 17, 3, 16, None),
        (40, 20, 30, 3, 8, 2),  # version 3: five chunks, intra chunks 0, 2, 4
        (9, 16, 16, 1, 8, 1),
    ):
        config = _config_dict(chunk, levels, intra_period)
        pad = Padding(-frames % 8, -height % 16, -width % 16)
        padded = frames + pad.t
        ids = np.sort(rng.integers(0, 3, padded)).astype(np.int32)
        chunks = -(-padded // chunk)
        segments = [
            [(rng.bytes(int(rng.integers(0, 12))), rng.bytes(int(rng.integers(1, 40)))) for _ in range(chunks)]
            for _ in range(levels)
        ]
        info = VideoInfo(frames, height, width, 25.0, pad, ids)
        data = _LIB.write_mptvc(Compressed(segments, info, intra_period), config, "ab" * 32)
        assert data[8] == (2 if intra_period is None else 3)
        out += [data, data[: len(data) * 3 // 4], data[: len(data) // 3]]
        rated = _LIB.write_mptvc(_rate_controlled(segments, info, intra_period, chunk, rng), config, "ab" * 32)
        assert rated[8] == 4
        out += [rated, rated[: len(rated) * 2 // 3]]
    return out


def _rate_controlled(segments: list, info, intra_period: int | None, chunk: int, rng: np.random.Generator):
    """The segments as a version 4 file: random levels per chunk (empty segments above them), token
    frames 1.. of levels >= 1 left out at random where a context model codes them, and SSEs."""
    from mptvc_latents.types import ChunkRate, Compressed, RatePlan

    levels, padded = len(segments), info.padded_shape[0]
    plans, kept = [], [list(level) for level in segments]
    for c in range(len(segments[0])):
        n = int(rng.integers(1, levels + 1))
        t = (min(chunk * (c + 1), padded) - chunk * c) // 4  # token frames of the chunk (patch_t = 4)
        skipped = [
            int(rng.integers(0, 1 << t)) & ~1 if 0 < k < n and intra_period is not None else 0 for k in range(levels)
        ]
        sse = sorted(rng.random(levels) * 1e6, reverse=True)[:n]
        plans.append(ChunkRate(n, tuple(skipped), tuple(sse + [sse[-1]] * (levels - n))))
        for k in range(n, levels):
            kept[k][c] = (b"", b"")
    plan = RatePlan(tuple(plans), "bpp" if len(plans) % 2 else "psnr", 0.05 if len(plans) % 2 else 31.5)
    return Compressed(kept, info, intra_period, plan)


def fix_header_crc(data: bytes) -> bytes:
    """Re-stamp the header CRC so a mutant passes the CRC check (when its length field allows)."""
    if len(data) < 14:
        return data
    (body_len,) = struct.unpack_from("<I", data, 10)
    end = 14 + body_len
    if end + 4 > len(data):
        return data
    return data[:end] + struct.pack("<I", zlib.crc32(data[:end])) + data[end + 4 :]


def check(data: bytes) -> None:
    """Read ``data``; every property that must hold for a readable file is asserted."""
    lib = _LIB
    try:
        stream, header, report = lib.read_mptvc(data, warn=False)
    except lib.BitstreamError:
        try:
            lib.inspect_mptvc(data).to_dict()
        except lib.BitstreamError:
            pass
        return
    ends = header.level_ends()
    assert 1 <= report.levels_complete == len(stream.segments) <= header.num_levels
    assert ends[report.levels_complete - 1] <= len(data) == report.file_bytes
    assert stream.info.scene_ids.shape == (stream.info.padded_shape[0],)
    assert (stream.intra_period is None) == ("context" not in header.config)
    assert header.version == 4 or (stream.intra_period is None) == (header.version == 2)
    assert (header.rate is not None) == (header.version == 4) and stream.rate == header.rate
    inspection = lib.inspect_mptvc(data).to_dict()
    assert inspection["levels_complete"] == report.levels_complete
    for k in range(report.levels_complete):
        assert lib.truncate_mptvc(data, k) == data[: ends[k]]
    if not report.truncated:
        again, header2, _ = lib.read_mptvc(lib.write_mptvc(stream, header.config, header.digest))
        assert again.segments == stream.segments and header2.digest == header.digest
        assert header2.segment_sizes == header.segment_sizes and header2.config == header.config
        assert np.array_equal(again.info.scene_ids, stream.info.scene_ids)
        assert header2.rate == header.rate


_INTERESTING = (0, 1, 2, 7, 8, 255, 256, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A few random edits (bit flips, bytes, interesting u32s, inserts, deletes, cuts)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rng.randrange(256)
        elif op == 2 and len(buf) >= 4:
            struct.pack_into("<I", buf, pos % (len(buf) - 3), rng.choice(_INTERESTING))
        elif op == 3:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            del buf[pos : pos + rng.randint(1, 8)]
        else:
            del buf[pos:]
    out = bytes(buf)
    return fix_header_crc(out) if rng.random() < 0.5 else out


def _run_random(seconds: float, seed: int) -> int:
    rng = random.Random(seed)
    corpus = seeds()
    deadline, runs = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        data = mutate(rng.choice(corpus), rng) if rng.random() < 0.95 else rng.randbytes(rng.randint(0, 64))
        try:
            check(data)
        except Exception:
            print(f"FAILED on input {data.hex()}", file=sys.stderr)
            raise
        runs += 1
    print(f"random engine: {runs} inputs in {seconds:.0f} s, no failure")
    return 0


def _run_atheris(seconds: float, seed: int) -> int:
    import atheris

    global _LIB
    with atheris.instrument_imports(include=["mptvc_latents"]):
        from mptvc_latents.formats import container
    _LIB = container
    corpus = Path(tempfile.mkdtemp(prefix="mptvc-fuzz-"))
    for i, data in enumerate(seeds()):
        (corpus / f"seed{i}").write_bytes(data)

    def one_input(data: bytes) -> None:
        check(data)

    def mutator(data: bytes, max_size: int, mutation_seed: int) -> bytes:
        data = atheris.Mutate(data, max_size)
        return fix_header_crc(data) if mutation_seed % 2 else data

    argv = [
        sys.argv[0],
        f"-max_total_time={int(seconds)}",
        f"-seed={seed + 1}",
        "-timeout=20",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={corpus}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(argv, one_input, custom_mutator=mutator)
    atheris.Fuzz()  # exits the process: 0 when the time is up, non-zero on a failure
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            engine = "random"
    if engine == "atheris":
        return _run_atheris(args.seconds, args.seed)
    global _LIB
    from mptvc_latents.formats import container

    _LIB = container
    return _run_random(args.seconds, args.seed)


if __name__ == "__main__":
    sys.exit(main())
