"""Reproduction of LF-MMLGCN vs LightGCN (issue #5): a reduced grid, every model tuned alike.

One command runs everything, resumably, and regenerates the report::

    nice -n 19 python experiments/lfmmlgcn_repro.py --datasets lastfm-2k,dbbook

1. **Data.** Each dataset is converted from ``../shared/datasets`` by ``recbole-mm convert`` (and its
   text encoded by ``recbole-mm extract``) into ``--data-path`` when missing; the commands are in
   :data:`DATASETS`. The sources' own train/valid/test splits are kept.
2. **Runs.** For every dataset, model (:data:`MODELS`: LightGCN and four LF-MMLGCN variants),
   number of layers (``--layers``) and point of the grid ``--learning-rates`` x ``--reg-weights``
   (the same grid for every model: equal tuning effort), one training run with early stopping on
   validation NDCG@20 (at most ``--epochs`` epochs, patience ``--stopping-step``), then one test
   evaluation of the best-validation checkpoint. Each finished run is saved at once as
   ``<out>/runs/<run>.json`` (written atomically); a run whose file exists is skipped, so an
   interrupted command resumes where it stopped.
3. **Selection.** For each (dataset, model, layers) the grid point with the best validation
   NDCG@20 is kept; its test metrics are reported. Test metrics never take part in a choice.
   Seed variance: the configuration LightGCN and LF-MMLGCN each chose on validation (over layers
   and grid, with ``--seed``) is trained again with each of ``--confirm-seeds``.
4. **Report.** ``<out>/results.md``: per dataset a table in the shape of the paper's Tables 3-14
   (rows model x layers, columns Precision/Recall/NDCG @ 5/10/20/50), LF-MMLGCN vs LightGCN at
   equal tuning effort, the seed variance, and the selected runs' training (best epoch, loss,
   validation vs test: the overfitting check); ``<out>/<dataset>_k10.png``: bar charts at k=10.
   ``--report-only`` rebuilds them from the saved runs.

The defaults are a reduced grid sized for about an hour of one CPU core on lastfm-2k and dbbook:
d=64 (the paper: 512), batch 2048, lr in {0.005, 0.01} x L2 in {1e-4, 1e-3}, at most 60 epochs
with patience 10, one grid seed and three confirmation seeds. ``--datasets ml-1m`` adds MovieLens
1M (about 15x lastfm-2k's interactions: meant for a GPU, ``--device cuda``). The findings (what
agrees with the paper and what does not) are in ``<out>/README.md``, written from ``results.md``.
"""

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import recbole_mm
from recbole_mm import Config, get_trainer
from recbole_mm.files import replace_atomically
from recbole_mm.quick_start import _build
from recbole_mm.record import describe_device, kept_epoch, versions

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RECBOLE_MM_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
CLI = [sys.executable, "-m", "recbole_mm"]

# name -> how it is made from ../shared/datasets, and the LF-MMLGCN modalities it offers
DATASETS = {
    "lastfm-2k": {
        "convert": ["mmrec", "--src", "{shared}/lastfm-2k/mmrec", "--keep-split"],
        "extract": None,  # the release's MiniLM / VGGish / Whisper matrices come with the convert
        "modalities": ["all-MiniLM-L6-v2", "vggish", "whisper"],
        "about": "HetRec Last.fm 2K, multimodal release: fixed split; text (tags, all-MiniLM-L6-v2) "
        "and two audio features (VGGish, Whisper) as published",
    },
    "dbbook": {
        "convert": [
            "mmrec", "--src", "{shared}/dbbook/mmrec", "--keep-split", "--implicit-threshold", "1",
            "--item-text", "{shared}/dbbook/full_extended_dbbook_img_links.tsv",
            "--item-text-cols", "name",
        ],
        "extract": ["--modality", "text", "--field", "name", "--device", "cpu"],
        "modalities": ["text"],
        "about": "DBbook, multimodal release: fixed split, positive ratings only (rating 1); text: "
        "book titles encoded with all-MiniLM-L6-v2 (no other modality is available offline)",
    },
    "ml-1m": {
        "convert": [
            "lightgcn-txt", "--src", "{shared}/ml-1m/implicit", "--keep-split",
            "--item-json", "{shared}/ml-1m/implicit/llm_response_item.json",
        ],
        "extract": ["--modality", "text", "--field", "description", "--device", "cpu"],
        "modalities": ["text"],
        "about": "MovieLens 1M, LightGCN-text release (CoLaKG): train/test kept, 10% of each user's "
        "training items as validation; text: LLM-written movie descriptions, all-MiniLM-L6-v2",
    },
}

# label -> (model, settings); LightGCN's L2 is made the same as LF-MMLGCN's (squared norms / 2B)
MODELS = {
    "LightGCN": ("LightGCN", {"require_pow": True}),
    "LF-MMLGCN": ("LFMMLGCN", {}),
    "LF-MMLGCN alpha": ("LFMMLGCN", {"weighting": "alpha"}),
    "LF-MMLGCN unfrozen": ("LFMMLGCN", {"projection": "unfrozen"}),
    "LF-MMLGCN normalized": ("LFMMLGCN", {"weighting": "normalized"}),
}
# models whose validation-chosen configuration is re-run with --confirm-seeds (seed variance)
CONFIRMED = ("LightGCN", "LF-MMLGCN")
METRICS = ["precision", "recall", "ndcg"]
KS = [5, 10, 20, 50]
VALID_METRIC = "ndcg@20"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="lastfm-2k,dbbook", help=f"from {', '.join(DATASETS)}")
    parser.add_argument("--data-path", default="/tmp/lfmmlgcn_repro/data", help="converted datasets")
    parser.add_argument(
        "--work-dir", default="/tmp/lfmmlgcn_repro/work", help="checkpoints and RecBole's logs"
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "lfmmlgcn"))
    parser.add_argument(
        "--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}"
    )
    parser.add_argument("--layers", default="0,1,2,3")
    parser.add_argument("--learning-rates", default="0.005,0.01")
    parser.add_argument("--reg-weights", default="1e-4,1e-3")
    parser.add_argument("--epochs", type=int, default=60, help="at most this many epochs")
    parser.add_argument(
        "--stopping-step", type=int, default=10, help="early stopping: epochs without a better validation score"
    )
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--train-batch-size", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=2020, help="seed of the grid")
    parser.add_argument(
        "--confirm-seeds", default="2021,2022,2023",
        help="seeds of the confirmation runs of each chosen configuration ('' for none)",
    )
    parser.add_argument(
        "--extra-metrics", default="",
        help="more metrics recorded for every run and tabled at k=20, e.g. ARP,LongTailShare ('' for none)",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (1: steady on a shared CPU, where more threads wait on each other)",
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report")
    args = parser.parse_args(argv)
    args.datasets = args.datasets.split(",")
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"unknown datasets {unknown}: choose from {list(DATASETS)}")
    args.models = args.models.split(",")
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}: choose from {list(MODELS)}")
    args.layers = [int(v) for v in args.layers.split(",")]
    args.extra_metrics = [m for m in args.extra_metrics.split(",") if m]
    args.learning_rates = [float(v) for v in args.learning_rates.split(",")]
    args.reg_weights = [float(v) for v in args.reg_weights.split(",")]
    args.confirm_seeds = [int(v) for v in args.confirm_seeds.split(",") if v]
    return args


def prepare_data(name, data_path):
    """Convert (and encode) dataset ``name`` into ``data_path`` unless it is there already."""
    spec = DATASETS[name]
    folder = Path(data_path) / name
    if not (folder / f"{name}.yaml").exists():
        convert = [part.format(shared=SHARED) for part in spec["convert"]]
        subprocess.run(
            CLI + ["convert", *convert[:1], "--out", data_path, "--name", name, *convert[1:]],
            check=True,
        )
    features = folder / "features" / "manifest.json"
    missing = [m for m in spec["modalities"] if not features.exists() or m not in features.read_text()]
    if missing and spec["extract"]:
        subprocess.run(
            CLI + ["extract", "--data-path", data_path, "--dataset", name, *spec["extract"]],
            check=True,
        )


def run_name(dataset, label, layers, lr, reg, seed=None):
    """File stem of one run, e.g. ``dbbook__LF-MMLGCN_alpha__L2__lr0.005__reg0.0001`` (grid, with
    the main seed) or ``...__seed2021`` (a confirmation run with another seed)."""
    name = f"{dataset}__{label.replace(' ', '_')}__L{layers}__lr{lr:g}__reg{reg:g}"
    return name if seed is None else f"{name}__seed{seed}"


def train_one(args, dataset, label, layers, lr, reg, seed):
    """Train and test one configuration with one seed; returns the run's record (dict)."""
    model, settings = MODELS[label]
    config_dict = {
        "data_path": args.data_path,
        "checkpoint_dir": args.work_dir,
        "seed": seed,
        "reproducibility": True,
        "state": "WARNING",
        "show_progress": False,
        "fast_path": True,
        "embedding_size": args.embedding_size,
        "n_layers": layers,
        "learning_rate": lr,
        "reg_weight": reg,
        "train_batch_size": args.train_batch_size,
        "epochs": args.epochs,
        "stopping_step": args.stopping_step,
        "eval_step": 1,
        "metrics": ["Precision", "Recall", "NDCG", *args.extra_metrics],
        "topk": KS,
        "valid_metric": "NDCG@20",
        "modalities": DATASETS[dataset]["modalities"],
        "use_gpu": args.device != "cpu",
        **settings,
    }
    yaml = str(Path(args.data_path) / dataset / f"{dataset}.yaml")
    config = Config(model, dataset, config_file_list=[yaml], config_dict=config_dict)
    data, train_data, valid_data, test_data, model_obj = _build(config)
    trainer = get_trainer(config)(config, model_obj)
    name = run_name(dataset, label, layers, lr, reg, seed)
    trainer.saved_model_file = str(Path(args.work_dir) / f"{name}.pth")
    curve = []
    start, cpu_start = time.perf_counter(), time.process_time()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=True, show_progress=False,
        callback_fn=lambda epoch, score: curve.append(float(score)),
    )
    test_result = trainer.evaluate(test_data, load_best_model=True)
    os.remove(trainer.saved_model_file)
    return {
        "dataset": dataset,
        "label": label,
        "model": model,
        "settings": settings,
        "n_layers": layers,
        "learning_rate": lr,
        "reg_weight": reg,
        "seed": seed,
        "best_valid_score": float(best_valid_score),
        "best_valid_result": {k: float(v) for k, v in best_valid_result.items()},
        "test_result": {k: float(v) for k, v in test_result.items()},
        "valid_curve": curve,
        "train_loss": [float(v) for v in trainer.train_loss_dict.values()],
        "seconds": round(time.perf_counter() - start, 2),
        "cpu_seconds": round(time.process_time() - cpu_start, 2),
        "data": {"users": data.user_num - 1, "items": data.item_num - 1,
                 "train": len(train_data._dataset), "valid": len(valid_data._dataset),
                 "test": len(test_data._dataset)},
        "device": describe_device(config["device"]),
        "config": {k: config[k] for k in ("embedding_size", "train_batch_size", "epochs", "stopping_step",
                                          "learner", "modalities", "projection", "weighting", "fusion")},
        "versions": versions(),
    }


def write_json(path, payload):
    replace_atomically(path, lambda f: f.write(json.dumps(payload, indent=1) + "\n"))


def run_grid(args):
    """Every run not yet saved under ``<out>/runs``, in order, one line printed per run: the grid
    with the main seed, then for each model of :data:`CONFIRMED` the configuration it chose on
    validation, again with each of ``--confirm-seeds``."""
    runs = Path(args.out) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    os.chdir(args.work_dir)  # RecBole writes ./log and ./log_tensorboard
    grid = list(itertools.product(args.learning_rates, args.reg_weights))
    for dataset in args.datasets:
        prepare_data(dataset, args.data_path)
        for layers, label, (lr, reg) in itertools.product(args.layers, args.models, grid):
            run_once(args, runs, dataset, label, layers, lr, reg, None)
        main_runs = [r for r in load_runs(args.out) if r["dataset"] == dataset and r["seed"] == args.seed]
        for label in (label for label in CONFIRMED if label in args.models):
            best = max((r for r in main_runs if r["label"] == label), key=lambda r: r["best_valid_score"])
            for seed in args.confirm_seeds:
                run_once(args, runs, dataset, label, best["n_layers"], best["learning_rate"],
                         best["reg_weight"], seed)


def run_once(args, runs, dataset, label, layers, lr, reg, seed):
    """Train one configuration unless its record exists; ``seed`` None: the main seed."""
    path = runs / f"{run_name(dataset, label, layers, lr, reg, seed)}.json"
    if path.exists():
        return
    record = train_one(args, dataset, label, layers, lr, reg, args.seed if seed is None else seed)
    write_json(path, record)
    print(
        f"{path.stem}: valid {VALID_METRIC} {record['best_valid_score']:.4f} "
        f"test {record['test_result'][VALID_METRIC]:.4f} epochs {len(record['train_loss'])} "
        f"{record['seconds']:.0f}s (cpu {record['cpu_seconds']:.0f}s)",
        flush=True,
    )


# ---------------------------------------------------------------- report
def load_runs(out):
    """All saved runs (list of dict)."""
    return [json.loads(p.read_text()) for p in sorted((Path(out) / "runs").glob("*.json"))]


def select(runs):
    """{(dataset, label, layers): the run with the best validation NDCG@20 over the grid}."""
    chosen = {}
    for run in runs:
        key = (run["dataset"], run["label"], run["n_layers"])
        if key not in chosen or run["best_valid_score"] > chosen[key]["best_valid_score"]:
            chosen[key] = run
    return chosen


def metric_columns():
    return [f"{metric}@{k}" for k in KS for metric in METRICS]


def dataset_table(dataset, chosen, labels, layers):
    """Markdown table: rows model x layers, columns P/R/NDCG @ k; best of each column in bold."""
    columns = metric_columns()
    rows = [(label, n) for label in labels for n in layers if (dataset, label, n) in chosen]
    best = {c: max(chosen[(dataset, *row)]["test_result"][c] for row in rows) for c in columns}
    short = {"precision": "P", "recall": "R", "ndcg": "NDCG"}
    heads = [f"{short[c.split('@')[0]]}@{c.split('@')[1]}" for c in columns]
    lines = ["| model | layers | lr | reg | " + " | ".join(heads) + " |"]
    lines.append("|" + " --- |" * (4 + len(columns)))
    for label, n in rows:
        run = chosen[(dataset, label, n)]
        cells = []
        for c in columns:
            value = f"{run['test_result'][c]:.4f}"
            cells.append(f"**{value}**" if run["test_result"][c] == best[c] else value)
        lines.append(
            f"| {label} | {n} | {run['learning_rate']:g} | {run['reg_weight']:g} | " + " | ".join(cells) + " |"
        )
    return lines


def comparison(dataset, chosen, runs, layers):
    """LF-MMLGCN (default variant) and every variant vs LightGCN on test NDCG@20 and Recall@20."""
    lines = [
        "| layers | LightGCN NDCG@20 | LF-MMLGCN NDCG@20 | change | LightGCN R@20 | LF-MMLGCN R@20 | change |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def change(new, old):
        return f"{100 * (new - old) / old:+.1f}%" if old else "-"

    for n in layers:
        base, ours = chosen.get((dataset, "LightGCN", n)), chosen.get((dataset, "LF-MMLGCN", n))
        if base and ours:
            b, o = base["test_result"], ours["test_result"]
            lines.append(
                f"| {n} | {b['ndcg@20']:.4f} | {o['ndcg@20']:.4f} | {change(o['ndcg@20'], b['ndcg@20'])} "
                f"| {b['recall@20']:.4f} | {o['recall@20']:.4f} | {change(o['recall@20'], b['recall@20'])} |"
            )
    # layers chosen on validation too: one best configuration per model over layers x grid
    lines += ["", "Layers also chosen on validation (one configuration per model over layers x grid):", ""]
    lines += ["| model | layers | lr | reg | valid NDCG@20 | test NDCG@20 | test R@20 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for label in MODELS:
        candidates = [r for r in runs if r["dataset"] == dataset and r["label"] == label]
        if candidates:
            best = max(candidates, key=lambda r: r["best_valid_score"])
            lines.append(
                f"| {label} | {best['n_layers']} | {best['learning_rate']:g} | {best['reg_weight']:g} "
                f"| {best['best_valid_score']:.4f} | {best['test_result']['ndcg@20']:.4f} "
                f"| {best['test_result']['recall@20']:.4f} |"
            )
    return lines


def curves(dataset, chosen, layers):
    """The selected runs' training of LF-MMLGCN frozen vs unfrozen: epochs, loss, valid vs test."""
    lines = [
        "| model | layers | best epoch | epochs run | train loss (epoch sum) at best epoch | valid NDCG@20 | test NDCG@20 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in layers:
        for label in ("LightGCN", "LF-MMLGCN", "LF-MMLGCN unfrozen"):
            run = chosen.get((dataset, label, n))
            if run:
                kept = kept_epoch(run["valid_curve"])
                lines.append(
                    f"| {label} | {n} | {kept + 1} | {len(run['train_loss'])} | {run['train_loss'][kept]:.4f} "
                    f"| {run['best_valid_score']:.4f} | {run['test_result']['ndcg@20']:.4f} |"
                )
    return lines


def beyond_accuracy(dataset, chosen, labels, layers, metrics):
    """The selected runs' ``metrics`` at k=20 on test, beside NDCG@20 and the training loss."""
    keys = [f"{metric.lower()}@20" for metric in metrics]
    lines = [
        "| model | layers | best epoch | train loss (epoch sum) at best epoch | test NDCG@20 | "
        + " | ".join(f"{metric}@20" for metric in metrics) + " |",
        "|" + " --- |" * (5 + len(metrics)),
    ]
    for label, n in itertools.product(labels, layers):
        run = chosen.get((dataset, label, n))
        if run:
            cells = " | ".join(f"{run['test_result'][key]:.4f}" for key in keys)
            kept = kept_epoch(run["valid_curve"])
            lines.append(
                f"| {label} | {n} | {kept + 1} | {run['train_loss'][kept]:.4f} "
                f"| {run['test_result']['ndcg@20']:.4f} | {cells} |"
            )
    return lines


def seed_table(dataset, runs, main_seed):
    """The configuration each model of :data:`CONFIRMED` chose on validation (main seed), tested
    with every seed: mean and standard deviation, and the seed-by-seed difference."""
    by_seed = {}
    lines = [
        "| model | layers | lr | reg | seeds | test NDCG@20 (mean ± sd) | test R@20 (mean ± sd) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in CONFIRMED:
        ours = [r for r in runs if r["dataset"] == dataset and r["label"] == label]
        main = [r for r in ours if r["seed"] == main_seed]
        if not main:
            continue
        best = max(main, key=lambda r: r["best_valid_score"])
        setting = (best["n_layers"], best["learning_rate"], best["reg_weight"])
        same = {r["seed"]: r["test_result"] for r in ours
                if (r["n_layers"], r["learning_rate"], r["reg_weight"]) == setting}
        by_seed[label] = same
        cells = []
        for metric in ("ndcg@20", "recall@20"):
            values = np.array([result[metric] for result in same.values()])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            cells.append(f"{values.mean():.4f} ± {spread:.4f}")
        lines.append(f"| {label} | {setting[0]} | {setting[1]:g} | {setting[2]:g} | "
                     f"{', '.join(map(str, sorted(same)))} | {cells[0]} | {cells[1]} |")
    if len(by_seed) == 2:
        first, second = (by_seed[label] for label in CONFIRMED)
        seeds = sorted(set(first) & set(second))
        gaps = [second[seed]["ndcg@20"] - first[seed]["ndcg@20"] for seed in seeds]
        lines += ["", f"{CONFIRMED[1]} - {CONFIRMED[0]}, test NDCG@20, seed by seed: "
                  + ", ".join(f"{seed}: {gap:+.4f}" for seed, gap in zip(seeds, gaps))
                  + f" ({sum(g > 0 for g in gaps)} of {len(gaps)} seeds in favour of {CONFIRMED[1]})."]
    return lines


def bar_chart(dataset, chosen, labels, layers, path):
    """P@10, R@10 and NDCG@10 on test: groups of bars per number of layers, one bar per model."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / len(labels)
    for axis, metric in zip(axes, ("precision@10", "recall@10", "ndcg@10")):
        for index, label in enumerate(labels):
            values = [chosen[(dataset, label, n)]["test_result"][metric] if (dataset, label, n) in chosen
                      else math.nan for n in layers]
            axis.bar(np.arange(len(layers)) + (index - (len(labels) - 1) / 2) * width, values, width, label=label)
        axis.set_xticks(np.arange(len(layers)), [f"{n} layers" for n in layers])
        axis.set_title(f"{dataset}: {metric} (test)")
        axis.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=len(labels), fontsize=9)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    replace_atomically(path, lambda f: figure.savefig(f, format="png", dpi=110), binary=True)
    plt.close(figure)


def command(args):
    """The command that makes these results, every setting spelled out (str)."""
    out = Path(args.out)
    out = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    return (
        f"python experiments/lfmmlgcn_repro.py --datasets {','.join(args.datasets)} --out {out} "
        f"--models '{','.join(args.models)}' "
        f"--layers {','.join(map(str, args.layers))} "
        f"--learning-rates {','.join(f'{v:g}' for v in args.learning_rates)} "
        f"--reg-weights {','.join(f'{v:g}' for v in args.reg_weights)} --epochs {args.epochs} "
        f"--stopping-step {args.stopping_step} --embedding-size {args.embedding_size} "
        f"--train-batch-size {args.train_batch_size} --seed {args.seed} "
        f"--confirm-seeds '{','.join(map(str, args.confirm_seeds))}' --device {args.device} "
        f"--threads {args.threads}"
        + (f" --extra-metrics {','.join(args.extra_metrics)}" if args.extra_metrics else "")
    )


def write_report(args):
    """``results.md`` and one bar chart per dataset, from the saved runs."""
    all_runs = load_runs(args.out)
    runs = [r for r in all_runs if r["seed"] == args.seed]  # the grid; choices use these only
    chosen = select(runs)
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in runs)]
    labels = [label for label in MODELS if any(r["label"] == label for r in runs)]
    layers = sorted({r["n_layers"] for r in runs})
    lines = [
        "# LF-MMLGCN vs LightGCN: results (generated)",
        "",
        f"Generated by `{command(args)}` (add `--report-only` to rebuild it from `runs/`).",
        "Test metrics of the configuration chosen on validation NDCG@20 (README.md: protocol, findings).",
        "",
    ]
    for dataset in datasets:
        ours = [r for r in runs if r["dataset"] == dataset]
        data = ours[0]["data"]
        density = (data["train"] + data["valid"] + data["test"]) / (data["users"] * data["items"])
        grid = sorted({(r["learning_rate"], r["reg_weight"]) for r in ours})
        done = len({(r["label"], r["n_layers"]) for r in ours})
        confirmations = [r for r in all_runs if r["dataset"] == dataset and r["seed"] != args.seed]
        cpu_minutes = sum(r["cpu_seconds"] for r in ours + confirmations) / 60
        lines += [
            f"## {dataset}",
            "",
            (
                f"{DATASETS[dataset]['about']}. {data['users']} users, {data['items']} items, "
                f"train/valid/test {data['train']}/{data['valid']}/{data['test']}, "
                f"density {density:.4%}. Modalities: {', '.join(DATASETS[dataset]['modalities'])}. "
                f"Grid (lr, reg): {grid}; {len(ours)} grid runs ({done} model x layers cells) and "
                f"{len(confirmations)} confirmation runs, {cpu_minutes:.0f} CPU minutes in all "
                f"({ours[0]['device']})."
            ),
            "",
            f"![{dataset} at k=10]({dataset}_k10.png)",
            "",
            *dataset_table(dataset, chosen, labels, layers),
            "",
            "### LF-MMLGCN vs LightGCN at equal tuning effort (test)",
            "",
            *comparison(dataset, chosen, runs, layers),
            "",
            f"### Seed variance of the chosen configurations (seed {args.seed} chose them)",
            "",
            *seed_table(dataset, all_runs, args.seed),
            "",
            "### Training of the selected runs (overfitting check)",
            "",
            *curves(dataset, chosen, layers),
            "",
        ]
        if args.extra_metrics:
            lines += [
                "### Beyond accuracy (test, k=20)",
                "",
                *beyond_accuracy(dataset, chosen, labels, layers, args.extra_metrics),
                "",
            ]
        bar_chart(dataset, chosen, labels, layers, Path(args.out) / f"{dataset}_k10.png")
    lines += [
        (
            f"Environment: {platform.platform()}; python {platform.python_version()}; "
            f"torch {torch.__version__}; recbole_mm {recbole_mm.__version__}."
        ),
    ]
    replace_atomically(Path(args.out) / "results.md", lambda f: f.write("\n".join(lines) + "\n"))


def main(argv=None):
    args = parse_args(argv)
    args.out = str(Path(args.out).resolve())
    args.data_path = str(Path(args.data_path).resolve())
    torch.set_num_threads(args.threads)
    if not args.report_only:
        run_grid(args)
    write_report(args)


if __name__ == "__main__":
    main()
