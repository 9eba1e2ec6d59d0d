"""Runtime overhead over a raw ``session.run`` on the same model, in the same process and run.

For an MLP policy and a small CNN visuomotor policy: interleaved rounds of (a) the raw
onnxruntime ``InferenceSession.run`` with fresh feeds, (b) :class:`InferenceRuntime.run`
(IO binding + copy into bound inputs + finite/shape checks) and (c) the runtime with inputs
written in place into its bound buffers. Target: (b) ≤ raw × 1.05 + 20 µs (median).

Usage: python bench/inference.py [--iterations N] [--threads T]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import onnxruntime as ort

from robot_brain.inference.builders import build_policy, cnn_contract, mlp_contract
from robot_brain.inference.model import load_model
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions


def timed(call, iterations: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    samples = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        call()
        samples[i] = time.perf_counter() - start
    return samples


def measure(name: str, document: dict, hidden: tuple[int, ...], iterations: int, threads: int) -> dict:  # type: ignore[type-arg]
    model = load_model(build_policy(document, hidden=hidden).SerializeToString())
    runtime = InferenceRuntime(model, RuntimeOptions(providers=["cpu"], intra_op_threads=threads, warmup_runs=50))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    raw = ort.InferenceSession(model.model_bytes, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal([int(d) for d in t.shape]).astype(t.dtype) for n, t in runtime.inputs.items()}
    for _ in range(50):
        raw.run(None, feeds)
    buffers = {n: runtime.input_buffer(n) for n in feeds}
    for n, b in buffers.items():
        b[...] = feeds[n]  # type: ignore[index]
    results: dict[str, list[np.ndarray]] = {
        "raw session.run": [],
        "runtime.run(feeds)": [],
        "runtime.run() in place": [],
    }
    rounds = 10
    for _ in range(rounds):  # interleave so drifts in machine load hit every variant alike
        results["raw session.run"].append(timed(lambda: raw.run(None, feeds), iterations // rounds))
        results["runtime.run(feeds)"].append(timed(lambda: runtime.run(feeds), iterations // rounds))
        results["runtime.run() in place"].append(timed(runtime.run, iterations // rounds))
    rows = {}
    for variant, chunks in results.items():
        samples = np.concatenate(chunks) * 1e6
        rows[variant] = {"median_us": float(np.median(samples)), "p99_us": float(np.percentile(samples, 99))}
    base = rows["raw session.run"]["median_us"]
    for variant in rows:
        rows[variant]["overhead_us"] = rows[variant]["median_us"] - base
        rows[variant]["within_target"] = rows[variant]["median_us"] <= base * 1.05 + 20.0
    return {"model": name, "provider": runtime.providers.primary, "threads": threads, "results": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    reports = [
        measure("MLP 14->256->256->16x8", mlp_contract(horizon=16), (256, 256), args.iterations, args.threads),
        measure(
            "CNN 96x96 RGB + 7 joints", cnn_contract(size=96), (256,), max(500, args.iterations // 5), args.threads
        ),
    ]
    print(f"{'model':<26} {'variant':<24} {'median µs':>10} {'p99 µs':>10} {'overhead µs':>12} {'target':>7}")
    for report in reports:
        for variant, row in report["results"].items():
            print(
                f"{report['model']:<26} {variant:<24} {row['median_us']:>10.1f} {row['p99_us']:>10.1f} "
                f"{row['overhead_us']:>12.1f} {'ok' if row['within_target'] else 'MISS':>7}"
            )
    print(
        json.dumps(
            {"bench": "inference", "onnxruntime": ort.__version__, "machine": platform.machine(), "reports": reports}
        )
    )


if __name__ == "__main__":
    main()
