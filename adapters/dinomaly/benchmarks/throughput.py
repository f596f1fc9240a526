"""Dinomaly throughput: train and score images/s, per encoder, precision and feature cache.

For each encoder (ViT-S and ViT-B by default), precision (fp32, bf16 autocast) and cache
setting it times one detector:

- *with the cache*: ``fit`` first encodes every image once (``encode img/s``), then trains
  on cached records (``train img/s`` = steps x batch / training seconds); ``score`` reads
  the records and runs only the trainable part.
- *without the cache* (the reference's way): every training batch and every scored image
  goes through the frozen encoder.

Weights are random (throughput does not depend on their values, and nothing downloads).
Sizes default to the reference's 392 px on a GPU and to 112 px on a CPU, where 392 px ViT-B
training would take hours. ``--write PATH`` puts the table into that Markdown file between
``<!-- dinomaly-throughput:{cpu,gpu}:begin/end -->`` markers, with the hardware named.

    python adapters/dinomaly/benchmarks/throughput.py                       # auto device
    python adapters/dinomaly/benchmarks/throughput.py --write docs/performance.md
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import re
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from noisyclean_dinomaly import Dinomaly
from noisyclean_dinomaly.weights import RandomWeightsWarning

from noisyclean.feature_cache import FeatureCache


class SyntheticImages:
    """``n`` ImageNet-normalised noise images at the crop size, with ids (no hashing)."""

    cache_key = "synthetic-noise/v1"

    def __init__(self, n: int, size: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.ids = [f"noise-{seed}-{i}" for i in range(n)]
        self.root = f"synthetic:{size}"

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads "
            f"(torch {torch.__version__})")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args, encoder: str, precision: str, cached: bool, device: torch.device) -> dict:
    data = SyntheticImages(args.images, args.size)
    kwargs = dict(
        encoder=encoder, weights=None, image_size=args.size, crop_size=args.size,
        batch_size=args.batch_size, device=str(device), precision=precision,
        warmup_steps=1, progress=False, seed=0, compile=args.compile, num_workers=0,
    )
    # warm-up: kernels, allocator, timm import, compilation
    Dinomaly(**kwargs, max_steps=2, feature_cache=FeatureCache() if cached else False).fit(
        SyntheticImages(args.batch_size, args.size, seed=1000)
    )
    det = Dinomaly(**kwargs, max_steps=args.steps,
                   feature_cache=FeatureCache() if cached else False)
    det.fit(data)
    _sync(device)
    start = time.perf_counter()
    det.score(data)
    _sync(device)
    score_s = time.perf_counter() - start
    row = dict(
        encoder=encoder, precision=precision, cache="on" if cached else "off",
        train=args.steps * args.batch_size / det.train_seconds_,
        score=len(data) / score_s,
        encode=(len(data) / det.records_seconds_) if cached else None,
    )
    logging.getLogger(__name__).info("%s", row)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| encoder | precision | feature cache | train img/s | score img/s | encode img/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        enc = f"{r['encode']:.1f}" if r["encode"] is not None else "(in train/score)"
        lines.append(f"| {r['encoder']} | {r['precision']} | {r['cache']} | "
                     f"{r['train']:.1f} | {r['score']:.1f} | {enc} |")
    return "\n".join(lines)


def write_section(path: Path, kind: str, body: str) -> None:
    """Replace the text between this kind's markers in ``path`` (atomically)."""
    begin = f"<!-- dinomaly-throughput:{kind}:begin -->"
    end = f"<!-- dinomaly-throughput:{kind}:end -->"
    text = path.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {begin} ... {end} markers; add them where the table goes")
    new = pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(new)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--encoders", nargs="+", default=["vit_small", "vit_base"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--size", type=int, default=None, help="crop size (392 GPU, 112 CPU)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (50 GPU, 4 CPU)")
    parser.add_argument("--images", type=int, default=None, help="images (512 GPU, 16 CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch (16 GPU, 8 CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file to update")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.simplefilter("ignore", RandomWeightsWarning)
    logging.getLogger("noisyclean_dinomaly.weights").setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    gpu = device.type == "cuda"
    args.size = args.size or (392 if gpu else 112)
    args.steps = args.steps or (50 if gpu else 4)
    args.images = args.images or (512 if gpu else 16)
    args.batch_size = args.batch_size or (16 if gpu else 8)

    rows = [
        measure(args, enc, prec, cached, device)
        for enc in args.encoders
        for prec in args.precisions
        for cached in (True, False)
    ]
    hw = hardware(device)
    body = (
        f"Measured on {hw}: {args.size} px crops, batch {args.batch_size}, {args.steps} "
        f"training steps, {args.images} images, compile={'on' if args.compile else 'off'}, "
        f"{time.strftime('%Y-%m-%d')}.\n\n" + table(rows)
    )
    print(body)
    if args.write:
        write_section(args.write, "gpu" if gpu else "cpu", body)


if __name__ == "__main__":
    main()
