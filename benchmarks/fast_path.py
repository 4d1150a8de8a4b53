"""Stock RecBole training and full-sort evaluation against recbole_mm's fast path, in one process.

Both paths get the same data, split, device, seed, config and initial weights; each model is
trained ``--epochs`` epochs by RecBole's ``Trainer`` and by ``FastTrainer``, then the test set is
evaluated. Printed per model and path: seconds per training epoch (the median epoch: on a shared
machine single epochs can be disturbed either way; every epoch is listed too), seconds per
full-sort test evaluation (the first call, with one-time setup, then the best of two more), peak
memory, Recall@20 and NDCG@20, and the stock / fast ratios; whether the fast evaluator
reproduces RecBole's metrics exactly on the stock-trained model; and one more stock evaluation of
that model at RecBole's own default ``eval_batch_size`` (4096 scores: a user or two per batch),
what a RecBole user gets without recbole_mm's ``overall.yaml``.

Examples::

    python benchmarks/fast_path.py --dataset ml-100k --models LightGCN,BPR --epochs 2
    python benchmarks/fast_path.py --dataset ml-1m --data-path dataset/ --device cuda --epochs 5

Peak memory is the CUDA allocator's peak on a GPU; on the CPU, the rise of the process's resident
set over its level at the start of the phase (sampled every 2 ms), so it reads as "extra memory
this phase needed". This is a benchmark, not a test: nothing here asserts a speed.
"""

import argparse
import statistics
import threading
from pathlib import Path

import psutil
import recbole
import torch
import yaml
from common import (  # benchmarks/common.py
    Report, argument_parser, base_settings, build, clocked, dataset_config_files, on_device, prepare,
    scratch_dir, split_text,
)
from recbole.trainer import Trainer

from recbole_mm import Config
from recbole_mm.fast_path import FastTrainer
from recbole_mm.fast_path.trainer import OPTIMIZER_IMPLS


def parse_args(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--models", default="LightGCN,BPR", help="comma-separated model names")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per path")
    parser.add_argument("--train-batch-size", type=int, default=2048)
    parser.add_argument(
        "--eval-batch-size",
        type=int,
        default=None,
        help="scores per evaluation batch (default: recbole_mm's overall.yaml)",
    )
    parser.add_argument(
        "--optimizer-impl",
        choices=OPTIMIZER_IMPLS,
        help="the fast path's optimizer_impl (default: recbole_mm's overall.yaml)",
    )
    return parser.parse_args(argv)


class PeakMemory:
    """Peak memory of a phase, in MiB: CUDA allocator peak, or resident-set rise on the CPU."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak_mib = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        process = psutil.Process()
        self._start = self._peak = process.memory_info().rss
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.002):
                self._peak = max(self._peak, process.memory_info().rss)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mib = (
                max(self._peak, psutil.Process().memory_info().rss) - self._start
            ) / 2**20
        return False


def timed(device, fn, *args, **kwargs):
    """(result, wall seconds) of ``fn(*args, **kwargs)``, waiting for the device to finish."""
    result, wall, _ = clocked(device, fn, *args, **kwargs)
    return result, wall


def build_path(args, model, checkpoint_dir):
    """Config, data, loaders and a fresh model (same seed, so same initial weights) for a path."""
    config_dict = {
        **base_settings(args, checkpoint_dir, ["Recall", "NDCG"], 20),
        "train_batch_size": args.train_batch_size,
    }
    if args.eval_batch_size:
        config_dict["eval_batch_size"] = args.eval_batch_size
    if args.optimizer_impl:
        config_dict["optimizer_impl"] = args.optimizer_impl
    config = on_device(
        Config(model, args.dataset, dataset_config_files(args), config_dict), args.device
    )
    return (config, *build(config))


def run_path(trainer_class, config, train_data, test_data, model):
    """Train ``config['epochs']`` epochs, then evaluate the test set three times (dict)."""
    device = config["device"]
    trainer = trainer_class(config, model)
    trainer.eval_collector.data_collect(train_data)
    epoch_seconds = []
    with PeakMemory(device) as train_memory:
        for epoch in range(config["epochs"]):
            _, seconds = timed(device, trainer._train_epoch, train_data, epoch)
            epoch_seconds.append(seconds)
    with PeakMemory(device) as eval_memory:
        result, first_eval = timed(device, trainer.evaluate, test_data, load_best_model=False)
        again = [
            timed(device, trainer.evaluate, test_data, load_best_model=False)[1] for _ in range(2)
        ]
    return {
        "epoch_s": statistics.median(epoch_seconds),
        "epochs_s": epoch_seconds,
        "eval_first_s": first_eval,
        "eval_s": min(again),
        "train_mib": train_memory.peak_mib,
        "eval_mib": eval_memory.peak_mib,
        "recall@20": float(result["recall@20"]),
        "ndcg@20": float(result["ndcg@20"]),
        "result": result,
    }


ROW = "{:<10} {:<6} {:>9} {:>12} {:>8} {:>14} {:>13} {:>10} {:>9}"
HEADINGS = ("path", "s/epoch", "eval 1st s", "eval s", "train peak MiB", "eval peak MiB")
COLUMNS = (("epoch_s", ".3f"), ("eval_first_s", ".3f"), ("eval_s", ".3f"))
COLUMNS += (("train_mib", ".0f"), ("eval_mib", ".0f"), ("recall@20", ".4f"), ("ndcg@20", ".4f"))


def recbole_default_evaluation(args, model, workdir, trained_model, expected):
    """Full-sort test evaluation of ``trained_model`` by RecBole's ``Trainer`` at RecBole's default
    ``eval_batch_size`` (read from RecBole's own ``overall.yaml``), twice: a dict with the batch
    size, the faster call's seconds and whether the metrics equal ``expected``."""
    with open(Path(recbole.__file__).parent / "properties" / "overall.yaml") as f:
        batch_size = yaml.safe_load(f)["eval_batch_size"]
    default_args = argparse.Namespace(**{**vars(args), "eval_batch_size": batch_size})
    config, _, _, test_data, _ = build_path(default_args, model, workdir)
    trainer = Trainer(config, trained_model)
    runs = [
        timed(config["device"], trainer.evaluate, test_data, load_best_model=False)
        for _ in range(2)
    ]
    same = all(result == expected for result, _ in runs)
    return {"eval_batch_size": batch_size, "eval_s": min(s for _, s in runs), "same": same}


def report_model(model, stock, fast, parity, default_eval, emit):
    """Print one model's rows: stock, fast, and the ratios."""
    emit(ROW.format(model, *HEADINGS, "recall@20", "ndcg@20"))
    for name, numbers in (("stock", stock), ("fast", fast)):
        emit(ROW.format("", name, *(format(numbers[key], spec) for key, spec in COLUMNS)))

    def ratio(numerator, denominator, spec):
        return format(numerator / denominator, spec) if denominator else "-"

    speedups = [ratio(stock[key], fast[key], ".1f") + "x" for key, _ in COLUMNS[:3]]
    metrics = [ratio(fast[key], stock[key], ".3f") for key in ("recall@20", "ndcg@20")]
    emit(ROW.format("", "ratio", *speedups, "", "", *metrics))
    emit(
        f"  per-epoch seconds: stock {[round(s, 3) for s in stock['epochs_s']]}, "
        f"fast {[round(s, 3) for s in fast['epochs_s']]}"
    )
    emit(f"  fast evaluator on the stock-trained model vs RecBole's evaluator: {parity}")
    emit(
        f"  stock at RecBole's default eval_batch_size ({default_eval['eval_batch_size']}): "
        f"{default_eval['eval_s']:.3f} s per test evaluation (best of 2), "
        f"{ratio(default_eval['eval_s'], fast['eval_s'], '.1f')}x the fast path's; metrics "
        + ("identical" if default_eval["same"] else "DIFFERENT")
    )
    emit("")


def header(args, config, dataset, report):
    """The report's first lines: command, device, seed, data and config."""
    report.head(
        "recbole_mm fast path vs stock RecBole",
        args,
        config["device"],
        f"{args.dataset} ({dataset.user_num - 1} users, {dataset.item_num - 1} items, "
        f"{dataset.inter_num} interactions); {split_text(config)}",
    )
    report.emit(
        f"config: epochs={args.epochs} train_batch_size={config['train_batch_size']} "
        f"eval_batch_size={config['eval_batch_size']} learner={config['learner']} "
        f"learning_rate={config['learning_rate']} optimizer_impl (fast path)="
        f"{config['optimizer_impl']} train_neg_sample_args={config['train_neg_sample_args']}"
    )
    report.emit(
        "s/epoch: median epoch; eval: full-sort on the test set, 1st call (with one-time "
        "setup) and best of 2 more; ratio: stock / fast for times, fast / stock for metrics"
    )
    report.emit()


def evaluator_parity(config, model, test_data, stock_result):
    """Whether FastTrainer.evaluate gives RecBole's numbers for the same model state (str)."""
    fast_result = FastTrainer(config, model).evaluate(test_data, load_best_model=False)
    differing = {
        k: (v, fast_result.get(k)) for k, v in stock_result.items() if fast_result.get(k) != v
    }
    if differing or fast_result.keys() != stock_result.keys():
        return f"DIFFERENT {differing}"
    return f"identical ({len(stock_result)} metrics)"


def main(argv=None):
    args = parse_args(argv)
    prepare(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    report = Report()
    with scratch_dir() as workdir:
        for index, model in enumerate(models):
            config, dataset, train_data, test_data, stock_model = build_path(args, model, workdir)
            if index == 0:
                header(args, config, dataset, report)
            stock = run_path(Trainer, config, train_data, test_data, stock_model)
            parity = evaluator_parity(config, stock_model, test_data, stock["result"])
            default_eval = recbole_default_evaluation(
                args, model, workdir, stock_model, stock["result"]
            )
            config, _, train_data, test_data, fast_model = build_path(args, model, workdir)
            fast = run_path(FastTrainer, config, train_data, test_data, fast_model)
            report_model(model, stock, fast, parity, default_eval, report.emit)
    report.save(args.output)


if __name__ == "__main__":
    main()
