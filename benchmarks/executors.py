"""Stage-1 wall time of the serial, process and ray executors on one workload.

Every executor runs the same Purifier (same detector, data, k and seed), and its scores are
checked to equal the serial ones, so the times compare the same computation. Ray is timed
twice: "ray (cold)" lets the executor start and stop its own local Ray instance inside the
run, as a one-off ``executor="ray"`` does; "ray (warm)" reuses an instance started
beforehand, as on a cluster that is already up.

    .venv/bin/python benchmarks/executors.py                 # the default workload
    .venv/bin/python benchmarks/executors.py --n 4000 --repeats 1   # a quick look

The ratio column is serial time / executor time: above 1 the executor is faster.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile

import numpy as np

from noisyclean import Purifier


def make_data(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Gaussian inliers with 5% far outliers: a stand-in for image feature vectors."""
    rng = np.random.default_rng(seed)
    n_out = n // 20
    far = rng.normal(size=(n_out, dim))
    far *= 6 / np.linalg.norm(far, axis=1, keepdims=True) * np.sqrt(dim) / 2
    return rng.permutation(np.vstack([rng.normal(size=(n - n_out, dim)), far]))


def stage1(x: np.ndarray, args: argparse.Namespace, executor: str,
           options: dict | None = None) -> tuple[float, np.ndarray]:
    p = Purifier(args.detector, k=args.k, executor=executor, executor_options=options,
                 progress=False).fit(x)
    return p.timings_["stage1_s"], p.scores_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=30000, help="number of samples")
    parser.add_argument("--dim", type=int, default=64, help="feature dimension")
    parser.add_argument("--k", type=int, default=4, help="number of sub-models")
    parser.add_argument("--detector", default="knn", help="registered detector name")
    parser.add_argument("--repeats", type=int, default=3, help="runs per executor (median)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="process workers and Ray CPUs (default: all cores)")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no ~/.ray/auth_token
    import ray

    ray_tmp = tempfile.mkdtemp(prefix="nc-ray-", dir="/tmp")  # short: unix socket paths
    init = {"num_cpus": args.workers, "_temp_dir": ray_tmp, "logging_level": "ERROR",
            "log_to_driver": False}
    x = make_data(args.n, args.dim)
    print(f"workload: detector={args.detector} n={args.n} dim={args.dim} k={args.k}; "
          f"{os.cpu_count()} cores, {args.workers} workers; python {platform.python_version()}, "
          f"ray {ray.__version__}; median of {args.repeats}; "
          f"load average before {os.getloadavg()[0]:.1f}")

    def serial():
        return stage1(x, args, "serial")

    def process():
        return stage1(x, args, "process", {"max_workers": args.workers})

    def ray_cold():
        return stage1(x, args, "ray", {"init_kwargs": init})

    def ray_warm():
        return stage1(x, args, "ray")

    runs = {"serial": serial, "process": process, "ray (cold)": ray_cold}
    times: dict[str, list[float]] = {name: [] for name in [*runs, "ray (warm)"]}
    _, reference = serial()  # warm-up: imports and the detector registry load once
    try:
        for _ in range(args.repeats):
            for name, fn in runs.items():
                seconds, scores = fn()
                if not np.array_equal(scores, reference, equal_nan=True):
                    raise SystemExit(f"{name} gave other scores than serial")
                times[name].append(seconds)
        ray.init(include_dashboard=False, **init)
        ray_warm()  # starts the worker processes, as a cluster that is up has them
        for _ in range(args.repeats):
            seconds, scores = ray_warm()
            if not np.array_equal(scores, reference, equal_nan=True):
                raise SystemExit("ray (warm) gave other scores than serial")
            times["ray (warm)"].append(seconds)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)

    print(f"load average after {os.getloadavg()[0]:.1f}")
    base = statistics.median(times["serial"])
    print(f"{'executor':<12} {'stage-1 s':>10} {'ratio':>7}   runs")
    for name, values in times.items():
        med = statistics.median(values)
        runs_text = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:<12} {med:>10.2f} {base / med:>7.2f}   {runs_text}")


if __name__ == "__main__":
    main()
