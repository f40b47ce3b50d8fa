"""A BO campaign of real proxy trainings on every GPU of this machine, through the process runner.

What it shows: the `process` runner gives each worker one GPU (CUDA_VISIBLE_DEVICES), trials train
side by side on them, and each trial records where it ran. Per trial it prints the worker's pid,
its CUDA_VISIBLE_DEVICES, the device the trainer used, the training time and the loss; then the
campaign's wall time against the sum of the trials' times (their overlap).

    python experiments/gpu_campaign.py --data data/small-bpe1k --trials 8 --workers 2

`--workers` defaults to the number of GPUs (at least 1). With more workers than GPUs the workers
share them round-robin (the runner warns). Needs a dataset built by `bomix data build`.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import bomix
from bomix.evaluators import get_evaluator
from bomix.runners.process import detect_gpus
from bomix.testing import FaultInjector


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset directory (bomix data build)")
    p.add_argument("--preset", default="5m", help="proxy model preset (default 5m)")
    p.add_argument("--tokens", type=int, default=None, help="training tokens per trial (default: the preset's)")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="default: one per GPU")
    p.add_argument("--optimizer", default="bo")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args()

    gpus = detect_gpus()
    workers = args.workers or max(1, len(gpus))
    params = {"data": args.data, "preset": args.preset, **({"tokens": args.tokens} if args.tokens else {})}
    proxy = get_evaluator("proxy", **params)
    evaluator = FaultInjector(evaluator=proxy)  # no faults: it only records pid and CUDA_VISIBLE_DEVICES
    directory = Path(tempfile.mkdtemp(prefix="bomix-gpu-"))
    study = bomix.create_study(directory / "study", space=bomix.MixtureSpace(proxy.domains),
                               optimizer=args.optimizer, seed=0)
    print(f"GPUs: {gpus or 'none'}; {workers} workers; {args.trials} trials of preset {args.preset}")
    start = time.time()
    study.optimize(evaluator, args.trials, workers, runner="process", show_progress=False)
    wall = time.time() - start

    rows = []
    print(f"{'trial':>5} {'pid':>8} {'CUDA_VISIBLE':>12} {'device':>7} {'seconds':>8} {'value':>8}  state")
    for t in study.trials:
        extra, seconds = t.extra, (t.cost or {}).get("seconds")
        rows.append({"trial": t.number, "state": t.state.value, "pid": extra.get("pid"),
                     "cuda_visible_devices": extra.get("cuda_visible_devices"), "device": extra.get("device"),
                     "seconds": seconds, "value": t.value, "error": (t.error or "")[:300] or None})
        print(f"{t.number:>5} {str(extra.get('pid')):>8} {str(extra.get('cuda_visible_devices')):>12} "
              f"{str(extra.get('device')):>7} {seconds or float('nan'):>8.1f} "
              f"{t.value if t.value is not None else float('nan'):>8.4f}  {t.state.value}"
              + (f": {t.error.splitlines()[0][:120]}" if t.error else ""))
    busy = sum(r["seconds"] or 0 for r in rows)
    print(f"campaign wall time {wall:.1f} s; sum of trial times {busy:.1f} s; overlap x{busy / wall:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"gpus": gpus, "workers": workers, "trials": rows, "wall_s": wall,
                                        "sum_trial_s": busy, "machine": platform.platform(),
                                        "bomix": bomix.__version__, "args": vars(args) | {"out": str(args.out)}},
                                       indent=2, default=str))
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
