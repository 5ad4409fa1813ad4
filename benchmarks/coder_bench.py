"""Entropy-coder benchmark: our rANS coder against constriction and CompressAI.

Run from the repository root::

    python -m benchmarks.coder_bench [--size-scale 0.1] [--repeats 3] \
        [--coders ours,constriction,compressai] [--out benchmarks/results/coder_bench.json]

Every coder codes the same symbols under the same 16-bit integer tables (see
``benchmarks/_workloads.py``). Throughput is the median of ``--repeats`` timed runs after
one warm-up run, whose output is checked to round-trip exactly. Overhead is measured
against the ideal cost under those tables plus, for escapes, an Elias-gamma code of the
zig-zag overflow (``RangeCoder.ideal_cost``, ``mptvc_latents.coder.IdealCost.total_bits``).

"core" times only the coder call on inputs in the form the coder wants; "Python API" adds
the conversion from and to int32 numpy arrays (CompressAI: ``tolist()`` and back;
constriction: mapping to table symbols, escape payloads and gathering per-symbol
probability rows).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks._coders import ADAPTERS
from benchmarks._workloads import Workload, build_workloads
from mptvc_latents.coder import IdealCost, RangeCoder

logger = logging.getLogger("coder_bench")

ALL_CODERS = ("ours", "constriction", "compressai")
DEFAULT_OUT = Path(__file__).parent / "results" / "coder_bench.json"


# ---------------------------------------------------------------------------- measuring


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def measure_single(adapter, w: Workload, repeats: int) -> dict:
    """Warm-up with a round-trip check, then ``repeats`` timed encodes and decodes."""
    x, _ = _timed(adapter.encode_inputs, w)
    payload = adapter.encode(x)
    decoded = adapter.decode_outputs(adapter.decode(payload, adapter.decode_inputs(w)), w)
    roundtrip = bool(np.array_equal(decoded, w.symbols))
    core_enc, core_dec, api_enc, api_dec = [], [], [], []
    for _ in range(repeats):
        x, t_in = _timed(adapter.encode_inputs, w)
        payload, t_enc = _timed(adapter.encode, x)
        y, t_din = _timed(adapter.decode_inputs, w)
        raw, t_dec = _timed(adapter.decode, payload, y)
        _, t_out = _timed(adapter.decode_outputs, raw, w)
        core_enc.append(t_enc)
        core_dec.append(t_dec)
        api_enc.append(t_in + t_enc)
        api_dec.append(t_din + t_dec + t_out)
    n = w.n_symbols
    return {
        "threads": 1,
        "encode_msym_s": n / statistics.median(core_enc) / 1e6,
        "decode_msym_s": n / statistics.median(core_dec) / 1e6,
        "api_encode_msym_s": n / statistics.median(api_enc) / 1e6,
        "api_decode_msym_s": n / statistics.median(api_dec) / 1e6,
        "bytes": adapter.n_bytes(payload),
        "roundtrip": roundtrip,
    }


def measure_parallel(adapter, w: Workload, repeats: int, threads: int) -> dict:
    """Independent streams (2 per thread) coded on ``threads`` threads."""
    n_streams = min(2 * threads, w.n_symbols)
    sizes = np.array([len(c) for c in np.array_split(np.arange(w.n_symbols), n_streams)], np.int64)
    streams = adapter.encode_parallel(w, sizes, threads)
    roundtrip = bool(np.array_equal(adapter.decode_parallel(streams, w, sizes, threads), w.symbols))
    enc, dec = [], []
    for _ in range(repeats):
        streams, t_enc = _timed(adapter.encode_parallel, w, sizes, threads)
        _, t_dec = _timed(adapter.decode_parallel, streams, w, sizes, threads)
        enc.append(t_enc)
        dec.append(t_dec)
    n = w.n_symbols
    return {
        "threads": threads,
        "n_streams": int(n_streams),
        "encode_msym_s": n / statistics.median(enc) / 1e6,
        "decode_msym_s": n / statistics.median(dec) / 1e6,
        "bytes": int(sum(len(s) for s in streams)),
        "roundtrip": roundtrip,
    }


def _overhead_pct(n_bytes: int, cost: IdealCost) -> float:
    return 100.0 * (8 * n_bytes / cost.total_bits - 1.0)


def bench_coder(name: str, w: Workload, cost: IdealCost, repeats: int, threads: int) -> dict:
    """One coder on one workload.

    A coder that cannot be imported is reported as skipped; one that raises while coding
    is reported as an error (and fails the run) instead of hiding the other coders.
    """
    try:
        adapter, setup_s = _timed(ADAPTERS[name], w)
    except ImportError as exc:
        logger.warning("Skipping %s: %s", name, exc)
        return {"status": "skipped", "reason": f"not importable: {exc}"}
    try:
        return _bench_adapter(adapter, name, w, cost, repeats, threads, setup_s)
    except Exception as exc:  # noqa: BLE001 - report any coder failure, keep benchmarking
        logger.exception("%s failed on %s", name, w.name)
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}


def _bench_adapter(adapter, name, w, cost, repeats, threads, setup_s) -> dict:
    result = {"status": "ok", "setup_s": setup_s}
    single = measure_single(adapter, w, repeats)
    single["overhead_pct"] = _overhead_pct(single["bytes"], cost)
    result["single_thread"] = single
    if adapter.multithreaded:
        multi = measure_parallel(adapter, w, repeats, threads)
        multi["overhead_pct"] = _overhead_pct(multi["bytes"], cost)
        result["all_threads"] = multi
    else:
        result["all_threads"] = None
    if not _round_trips(result):
        logger.error("%s does not round-trip on %s", name, w.name)
    return result


def run_benchmark(
    size_scale: float = 1.0,
    repeats: int = 3,
    coders: tuple[str, ...] = ALL_CODERS,
    threads: int | None = None,
) -> dict:
    """Build the workloads, run every coder, return the JSON-able report."""
    unknown = sorted(set(coders) - set(ADAPTERS))
    if unknown:
        raise ValueError(f"Unknown coders {unknown}; choose from {list(ADAPTERS)}.")
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, but it is {repeats}.")
    threads = threads or os.cpu_count() or 1
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {
            "size_scale": size_scale,
            "repeats": repeats,
            "coders": list(coders),
            "threads": threads,
        },
        "notes": NOTES,
        "workloads": {},
    }
    for w in build_workloads(size_scale):
        cost = RangeCoder(w.cdfs, w.cdf_lengths, w.offsets).ideal_cost(w.symbols, w.indexes)
        entry = {
            "description": w.description,
            "n_symbols": w.n_symbols,
            "n_tables": w.n_tables,
            "ideal_table_bits": cost.table_bits,
            "n_escapes": cost.n_escapes,
            "escape_payload_bits": cost.escape_bits,
            "ideal_bits": cost.total_bits,
            "ideal_bits_per_symbol": cost.total_bits / w.n_symbols,
            "coders": {},
        }
        for name in coders:
            logger.info("%s: %s", w.name, name)
            entry["coders"][name] = bench_coder(name, w, cost, repeats, threads)
        report["workloads"][w.name] = entry
    report["machine"]["load_average_end"] = _load_average()
    return report


NOTES = (
    "Throughput: median of the timed repeats after one warm-up, Msym/s. core = coder call "
    "only; api = including conversion from/to int32 numpy arrays. Overhead = compressed "
    "bits / ideal - 1, ideal = -log2(freq/2^16) of each coded table symbol plus an "
    "Elias-gamma code of raw+1 for each escape (raw = zig-zag overflow). all_threads = "
    "independent streams (2 per thread)."
)


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = {}
    for package in ("numpy", "constriction", "compressai", "mptvc-latents"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_start": _load_average(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


# ----------------------------------------------------------------------------- reporting


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews the timings."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def markdown_table(report: dict) -> str:
    """A table for BENCHMARKS.md: one row per workload, coder and thread setting."""
    lines = [
        "| workload | coder | threads | encode Msym/s | decode Msym/s "
        "| Python API enc / dec Msym/s | bytes | bits/sym | overhead vs ideal | round trip |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for wname, entry in report["workloads"].items():
        n = entry["n_symbols"]
        label = f"{wname} ({n / 1e6:g}M sym, {entry['n_tables']} tables)"
        for cname, res in entry["coders"].items():
            if res["status"] != "ok":
                why = f"{res['status']}: {res['reason']}"
                lines.append(f"| {label} | {cname} | – | {why} | | | | | | |")
                continue
            s = res["single_thread"]
            lines.append(
                f"| {label} | {cname} | 1 | {s['encode_msym_s']:.1f} | {s['decode_msym_s']:.1f} "
                f"| {s['api_encode_msym_s']:.1f} / {s['api_decode_msym_s']:.1f} | {s['bytes']:,} "
                f"| {8 * s['bytes'] / n:.4f} | {s['overhead_pct']:+.3f}% | {_ok(s)} |"
            )
            m = res["all_threads"]
            if m is None:
                lines.append(f"| {label} | {cname} | all | n/a | n/a | | | | | |")
            else:
                lines.append(
                    f"| {label} | {cname} | {m['threads']} ({m['n_streams']} streams) "
                    f"| {m['encode_msym_s']:.1f} | {m['decode_msym_s']:.1f} | | {m['bytes']:,} "
                    f"| {8 * m['bytes'] / n:.4f} | {m['overhead_pct']:+.3f}% | {_ok(m)} |"
                )
    machine = report["machine"]
    lines.append("")
    lines.append(
        f"{machine['cpu']}, {machine['cpu_count']} logical CPUs, {machine['os']}, Python "
        f"{machine['python']}; {report['date']}; size scale {report['config']['size_scale']}, "
        f"median of {report['config']['repeats']}; 1-min load average "
        f"{_first(machine.get('load_average_start'))} at start, "
        f"{_first(machine.get('load_average_end'))} at end."
    )
    return "\n".join(lines)


def _round_trips(result: dict) -> bool:
    runs = (result["single_thread"], result["all_threads"])
    return all(r["roundtrip"] for r in runs if r is not None)


def all_round_trips(report: dict) -> bool:
    """True when no coder failed and every coder that ran decoded every workload exactly."""
    return all(
        res["status"] == "skipped" or (res["status"] == "ok" and _round_trips(res))
        for entry in report["workloads"].values()
        for res in entry["coders"].values()
    )


def _first(values: list[float] | None) -> str:
    return f"{values[0]:.2f}" if values else "n/a"


def _ok(result: dict) -> str:
    return "yes" if result["roundtrip"] else "**NO**"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--size-scale", type=float, default=1.0, help="fraction of the full sizes (8M, 8M, 1M)")
    add("--repeats", type=int, default=3, help="timed repetitions; the median is reported")
    add("--coders", default=",".join(ALL_CODERS), help="comma-separated subset of the default")
    add("--threads", type=int, default=None, help="threads for 'all' (default os.cpu_count())")
    add("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON report")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    coders = tuple(c.strip() for c in args.coders.split(",") if c.strip())
    report = run_benchmark(args.size_scale, args.repeats, coders, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown_table(report))
    return 0 if all_round_trips(report) else 1


if __name__ == "__main__":
    sys.exit(main())
