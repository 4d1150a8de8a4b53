"""Ray Tune: wall time of one search at 1 vs 4 trials per GPU, and the driver's overhead.

One search (a model's ``properties/tune`` space, ``--trials`` random trials of ``--epochs``
epochs, FIFO scheduler so that every trial does the same work, the same seed) is run three ways
in one process, ``--repeats`` times interleaved (the fastest of each way is reported):

1. by hand: the trials' configurations trained one after the other with recbole_mm's
   quick-start internals (``_build``, the trainer, ``fit`` on train and validation: exactly a
   trial's work), no Ray;
2. ``recbole-mm tune``'s search (:func:`recbole_mm.tune.search.search_model`) with
   ``--gpus-per-trial 1``: one trial at a time per GPU;
3. the same with ``--gpus-per-trial 0.25``: four trials at a time per GPU.

Ray 2.6.3 does not install on the GPU machine's Python 3.12, so on a CPU-only machine the GPU is
Ray's *logical* resource (``ray.init(num_gpus=1)``): it caps concurrency exactly as a real GPU
would, but the trials train on the CPU, so the 4-per-GPU speed-up measured here is what the CPU
cores give, not what a GPU would. Printed: wall times (Ray's start-up excluded, printed apart),
the sum of the trials' own training times, and the ratios. A benchmark, not a test.

Example::

    python benchmarks/tune_concurrency.py --model BPR --trials 8 --epochs 3 \\
        --output benchmarks/results/tune_concurrency_cpu.txt
"""

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import ray
import recbole
import torch
from common import BUNDLED  # benchmarks/common.py

from recbole_mm import Config, get_trainer
from recbole_mm.files import replace_atomically
from recbole_mm.quick_start import _build
from recbole_mm.record import describe_device
from recbole_mm.tune.search import TuneSettings, plan_model, search_model



def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="BPR", help="model whose properties/tune space is searched")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", default=str(BUNDLED), help="folder holding <dataset>/")
    parser.add_argument("--trials", type=int, default=8, help="trials of the search")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--cpus-per-trial", type=float, default=None,
        help="Ray CPUs per trial (default: this machine's CPUs / 4, so that only the GPU share "
        "limits concurrency)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2,
        help="run the three ways this many times, interleaved; the fastest of each is reported",
    )
    parser.add_argument("--output", help="also write the report to this file")
    return parser.parse_args(argv)


def run_by_hand(plan, rows, folder):
    """Train ``rows``' configurations one after the other as a trial would, without Ray.

    Returns:
        tuple: (wall seconds, {trial number: best validation score}).
    """
    scores = {}
    start = time.perf_counter()
    for row in sorted(rows, key=lambda r: r["trial"]):
        checkpoints = os.path.join(folder, row["trial_id"])
        config = Config(plan.model, plan.setup.dataset, list(plan.setup.config_files), {
            **plan.setup.fixed, **row["config"], "checkpoint_dir": checkpoints,
            "gpu_id": "", "use_gpu": False,
        })
        _, train_data, valid_data, _, model = _build(config)
        trainer = get_trainer(config)(config, model)
        trainer.saved_model_file = os.path.join(checkpoints, f"{plan.model}.pth")
        scores[row["trial"]], _ = trainer.fit(
            train_data, valid_data, saved=True, show_progress=False
        )
    return time.perf_counter() - start, scores


def run_tune(settings, plan, output, gpus_per_trial):
    """One search through the driver; returns (wall seconds, rows)."""
    start = time.perf_counter()
    rows = search_model(settings, plan, output, gpus_per_trial)
    return time.perf_counter() - start, rows


def main(argv=None):
    args = parse_args(argv)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus_per_trial = args.cpus_per_trial or cpus / 4
    torch.set_num_threads(1)  # as each trial's worker: Ray gives a fractional-CPU actor 1 thread
    load_before = os.getloadavg()[0]
    output = os.path.abspath(args.output) if args.output else None
    origin = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        quiet = os.path.join(folder, "quiet.yaml")  # RecBole logs warnings only, in trials and by hand
        replace_atomically(quiet, lambda f: f.write("state: WARNING\n"))
        settings = TuneSettings(
            model=args.model, dataset=args.dataset, output=folder, data_path=args.data_path,
            config_files=[quiet], num_samples=args.trials, max_epochs=args.epochs,
            cpus_per_trial=cpus_per_trial, scheduler="fifo", search="random", seed=args.seed,
            verbose=0,
        )
        settings.check()
        plan = plan_model(settings, args.model)  # paths are absolute from here on
        os.chdir(folder)  # RecBole's ./log of the runs by hand stays out of the caller's folder
        start = time.perf_counter()
        ray.init(address="local", num_cpus=cpus, num_gpus=1, include_dashboard=False,
                 log_to_driver=False)
        ray_start = time.perf_counter() - start
        runs = {"one": [], "four": [], "hand": []}  # (seconds, rows or scores) per repeat
        for repeat in range(args.repeats):  # interleaved, so that a busy spell hits all three
            where = os.path.join(folder, str(repeat))
            runs["one"].append(run_tune(settings, plan, os.path.join(where, "one"), 1))
            runs["four"].append(run_tune(settings, plan, os.path.join(where, "four"), 0.25))
            runs["hand"].append(run_by_hand(plan, runs["one"][0][1], os.path.join(where, "hand")))
        ray.shutdown()
        os.chdir(origin)
    (one, rows_one), (four, rows_four), (hand, hand_scores) = (
        min(runs[name], key=lambda run: run[0]) for name in ("one", "four", "hand")
    )

    same_configs = [r["config"] for r in rows_one] == [r["config"] for r in rows_four]
    differences = [abs(hand_scores[r["trial"]] - r["best_valid_score"]) for r in rows_one]
    trial_seconds = {
        name: sum(r["seconds"] or 0 for r in rows) for name, rows in (("one", rows_one), ("four", rows_four))
    }
    command = " ".join(shlex.quote(a) for a in [sys.argv[0]] + list(argv or sys.argv[1:]))
    device = (
        f"{describe_device('cpu')}, Ray logical GPUs: 1 (no GPU: trials train on the CPU); "
        f"torch 1 thread per trial; python {platform.python_version()}; ray {ray.__version__}; "
        f"recbole {recbole.__version__}"
    )
    load = (
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {cpus} CPUs (other processes share the "
        "CPUs when above 0)"
    )
    search = (
        f"{args.model} on {args.dataset}, {args.trials} random trials x {args.epochs} epochs, FIFO "
        f"scheduler (no trial stopped early), {cpus_per_trial:g} CPUs per trial; each way run "
        f"{args.repeats} times, interleaved, fastest reported"
    )
    checks = (
        f"same configurations in both tune runs: {'yes' if same_configs else 'NO'}; by hand vs "
        f"tune best validation score, largest difference: {max(differences):.4f}"
    )
    overhead = f"{one / hand:.2f}x (+{(one - hand) / args.trials:.2f} s per trial)"
    lines = [
        "# Ray Tune concurrency and driver overhead (benchmarks/tune_concurrency.py)",
        f"command: python {command}",
        f"device: {device}",
        f"seed: {args.seed}",
        f"machine load (1-min load average) before / after: {load}",
        f"search: {search}",
        "",
        f"{'run':40s} {'wall s':>8s} {'sum of trial s':>15s}",
        f"{'by hand (quick_start internals, 1 by 1)':40s} {hand:8.1f}",
        f"{'tune, 1 trial per GPU (--gpus 1)':40s} {one:8.1f} {trial_seconds['one']:15.1f}",
        f"{'tune, 4 trials per GPU (--gpus 0.25)':40s} {four:8.1f} {trial_seconds['four']:15.1f}",
        "",
        f"driver overhead: tune 1 per GPU / by hand = {overhead}",
        f"concurrency speed-up: tune 1 per GPU / tune 4 per GPU = {one / four:.2f}x (below 1: slower)",
        f"ray.init (not in the wall times): {ray_start:.1f} s",
        f"checks: {checks}",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(output, lambda f: f.write(text))


if __name__ == "__main__":
    main()
