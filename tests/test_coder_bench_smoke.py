"""Smoke test of the entropy-coder benchmark at a tiny size (benchmarks/coder_bench.py)."""

import json

import numpy as np
import pytest

from benchmarks import _coders, coder_bench

SINGLE_KEYS = {
    "threads",
    "encode_msym_s",
    "decode_msym_s",
    "api_encode_msym_s",
    "api_decode_msym_s",
    "bytes",
    "roundtrip",
    "overhead_pct",
}
WORKLOADS = {"fsq8_scales", "fsq10_scale_mean", "hyper_factorized"}


def test_ours_round_trips_and_report_has_expected_keys(tmp_path, capsys):
    pytest.importorskip("mptvc_latents._coder")
    out = tmp_path / "bench.json"
    args = ["--size-scale", "0.001", "--repeats", "1", "--coders", "ours", "--out", str(out)]
    code = coder_bench.main(args)
    assert code == 0
    report = json.loads(out.read_text())
    assert {"date", "machine", "config", "notes", "workloads"} <= report.keys()
    assert {"cpu", "cpu_count", "os", "python", "versions"} <= report["machine"].keys()
    assert set(report["workloads"]) == WORKLOADS
    for entry in report["workloads"].values():
        assert {"n_symbols", "n_tables", "ideal_bits", "n_escapes", "coders"} <= entry.keys()
        ours = entry["coders"]["ours"]
        assert ours["status"] == "ok"
        assert SINGLE_KEYS <= ours["single_thread"].keys()
        assert ours["single_thread"]["roundtrip"] and ours["all_threads"]["roundtrip"]
        assert 8 * ours["single_thread"]["bytes"] >= entry["ideal_bits"] > 0, "no coder beats the ideal cost"
    assert report["workloads"]["hyper_factorized"]["n_escapes"] >= 0
    assert "| fsq8_scales" in capsys.readouterr().out


def test_every_available_coder_round_trips():
    report = coder_bench.run_benchmark(size_scale=0.0005, repeats=1)
    for entry in report["workloads"].values():
        for name, res in entry["coders"].items():
            if res["status"] == "ok":
                assert res["single_thread"]["roundtrip"], name
            else:
                assert res["status"] == "skipped" and res["reason"]


def test_missing_coder_is_reported_as_skipped(monkeypatch):
    def unavailable(_workload):
        raise ImportError("not built")

    monkeypatch.setitem(coder_bench.ADAPTERS, "ours", unavailable)
    report = coder_bench.run_benchmark(size_scale=0.0002, repeats=1, coders=("ours",))
    res = report["workloads"]["fsq8_scales"]["coders"]["ours"]
    assert res == {"status": "skipped", "reason": "not importable: not built"}
    assert "skipped" in coder_bench.markdown_table(report)


def test_failing_coder_is_reported_and_fails_the_run(monkeypatch):
    class Broken:
        multithreaded = False

        def __init__(self, _workload):
            pass

        def encode_inputs(self, _workload):
            raise RuntimeError("boom")

    monkeypatch.setitem(coder_bench.ADAPTERS, "ours", Broken)
    report = coder_bench.run_benchmark(size_scale=0.0002, repeats=1, coders=("ours",))
    res = report["workloads"]["hyper_factorized"]["coders"]["ours"]
    assert res == {"status": "error", "reason": "RuntimeError: boom"}
    assert not coder_bench.all_round_trips(report)


def test_unknown_coder_is_rejected():
    with pytest.raises(ValueError, match="Unknown coders"):
        coder_bench.run_benchmark(size_scale=0.0002, coders=("zstd",))


def test_gamma_split_and_join_are_inverse():
    m = np.array([1, 2, 3, 4, 7, 8, 1000, 2**33 + 5], dtype=np.int64)
    nb, bits = _coders.gamma_split(m)
    assert nb.tolist() == [0, 1, 1, 2, 2, 3, 9, 33]
    assert bits.size == nb.sum() and set(bits.tolist()) <= {0, 1}
    assert np.array_equal(_coders.gamma_join(nb, bits), m)
