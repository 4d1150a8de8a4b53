"""LF-MMLGCN's training epoch and full-sort evaluation time over RecBole's LightGCN, in one process.

Issue #5's target: LF-MMLGCN at most 1.15x LightGCN's time. Both models get the same data, split,
device, seed, embedding size, layers, batch size and L2 weight; LF-MMLGCN (one row per
``--variants`` entry) also gets the dataset's item features. Each model is trained ``--epochs``
epochs and its test set evaluated full-sort, by RecBole's ``Trainer`` ("stock") and by
``FastTrainer`` ("fast", ``fast_path: True``, where LightGCN gets the same propagation layer as
LF-MMLGCN). On a shared machine a burst of load would hit whichever model runs at that moment, so
the models take turns epoch by epoch (and evaluation by evaluation). Printed per path and model,
as wall-clock and as process CPU time (on a shared CPU the latter leaves out the time other
processes held the cores; on a GPU the wall clock is the measure): seconds per training epoch
(the median; every epoch is listed too), seconds per full-sort test evaluation, each starting
from uncached embeddings as a validation after an epoch does (the best of ``--eval-repeats``
after a first call with the evaluator's one-time setup), NDCG@20 after training, and the ratios
to LightGCN. This is a benchmark, not a test: nothing here asserts a speed.

Examples::

    python benchmarks/lfmmlgcn_speed.py --dataset ml-100k
    python benchmarks/lfmmlgcn_speed.py --dataset lastfm-2k --data-path /tmp/lfm_speed \\
        --modalities all-MiniLM-L6-v2,vggish,whisper --device cuda
"""

import statistics

from common import (  # benchmarks/common.py
    Report, argument_parser, base_settings, build, clocked, dataset_config_files, on_device, prepare,
    scratch_dir, split_text,
)
from recbole.trainer import Trainer

from recbole_mm import Config
from recbole_mm.fast_path import FastTrainer

# LF-MMLGCN settings per variant name (the rest: properties/model/LFMMLGCN.yaml)
VARIANTS = {
    "frozen": {},
    "alpha": {"weighting": "alpha"},
    "normalized": {"weighting": "normalized"},
    "unfrozen": {"projection": "unfrozen"},
    "trainable": {"projection": "trainable"},
    "attention": {"fusion": "attention"},
}
PATHS = {"stock": Trainer, "fast": FastTrainer}


def parse_args(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument(
        "--modalities",
        help="comma-separated feature sets of the dataset's feature store (default: the dataset "
        "YAML's, e.g. [text] for ml-100k)",
    )
    parser.add_argument("--feature-path", help="the feature store folder (default: the config's)")
    parser.add_argument(
        "--variants",
        default="frozen,alpha,normalized,unfrozen,trainable",
        help=f"LF-MMLGCN variants, comma-separated, from {', '.join(VARIANTS)}",
    )
    parser.add_argument("--paths", default="stock,fast", help="stock and/or fast")
    parser.add_argument("--epochs", type=int, default=7, help="training epochs per model and path")
    parser.add_argument(
        "--eval-repeats", type=int, default=5, help="timed evaluations per model after the first"
    )
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--n-layers", type=int, default=2)
    parser.add_argument("--train-batch-size", type=int, default=2048)
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    unknown += [p for p in args.paths.split(",") if p not in PATHS]
    if unknown:
        parser.error(f"unknown variants or paths {unknown}: variants {list(VARIANTS)}, paths {list(PATHS)}")
    return args


def build_entry(args, model, settings, checkpoint_dir):
    """(config, train_data, test_data, model) for one model, seeded as every other."""
    config_dict = {
        **base_settings(args, checkpoint_dir, ["Recall", "NDCG"], 20),
        "embedding_size": args.embedding_size,
        "n_layers": args.n_layers,
        "reg_weight": 1e-4,
        "train_batch_size": args.train_batch_size,
        **settings,
    }
    if args.modalities:
        config_dict["modalities"] = args.modalities.split(",")
    if args.feature_path:
        config_dict["feature_path"] = args.feature_path
    config = on_device(
        Config(model, args.dataset, dataset_config_files(args), config_dict), args.device
    )
    _, train_data, test_data, model_obj = build(config)
    return config, train_data, test_data, model_obj


def drop_cached_embeddings(model):
    """Forget the final embeddings a model cached for evaluation, as a training step does: every
    timed evaluation then propagates once, as each validation after a training epoch does."""
    model.train()  # recbole_mm's graph models drop their cache on a mode switch
    if hasattr(model, "restore_user_e"):  # RecBole's LightGCN clears it in calculate_loss
        model.restore_user_e = model.restore_item_e = None


def measure(path_trainer, entries, args):
    """Train the models of ``entries`` epoch by epoch in turn, then evaluate them in turn
    (``1 + --eval-repeats`` times each).

    Args:
        path_trainer (type): Trainer or FastTrainer.
        entries (list of (name, config, train_data, test_data, model)).

    Returns:
        dict: name -> {"epochs" [(wall, cpu)], "evals" [(wall, cpu)], "epoch" (median wall, median
        cpu), "eval_first" (wall, cpu), "eval" (best wall, best cpu of the repeats), "ndcg@20"}.
    """
    trainers = {}
    for name, config, train_data, _, model in entries:
        trainers[name] = path_trainer(config, model)
        trainers[name].eval_collector.data_collect(train_data)
    numbers = {name: {"epochs": [], "evals": []} for name, *_ in entries}
    for epoch in range(args.epochs):
        for name, config, train_data, _, _ in entries:
            _, *seconds = clocked(config["device"], trainers[name]._train_epoch, train_data, epoch)
            numbers[name]["epochs"].append(seconds)
    for _ in range(1 + args.eval_repeats):
        for name, config, _, test_data, model in entries:
            drop_cached_embeddings(model)
            result, *seconds = clocked(
                config["device"], trainers[name].evaluate, test_data, load_best_model=False
            )
            numbers[name]["evals"].append(seconds)
            numbers[name]["ndcg@20"] = float(result["ndcg@20"])
    for values in numbers.values():
        values["epoch"] = [statistics.median(column) for column in zip(*values["epochs"])]
        values["eval_first"] = values["evals"][0]
        values["eval"] = [min(column) for column in zip(*values["evals"][1:])]
    return numbers


ROW = "{:<6} {:<22} {:>8} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8}"


def format_path(path, numbers, emit):
    """Print one path's table: each model's wall and CPU times, NDCG@20 and ratios to LightGCN."""
    emit(
        ROW.format(
            path, "model", "s/epoch", "x LGCN", "cpu s/ep", "x LGCN",
            "eval s", "x LGCN", "cpu eval", "x LGCN", "ndcg@20",
        )
    )
    base = numbers["LightGCN"]
    for name, values in numbers.items():
        cells = []
        for key in ("epoch", "eval"):
            for clock in (0, 1):
                cells += [f"{values[key][clock]:.4f}", f"{values[key][clock] / base[key][clock]:.2f}x"]
        emit(ROW.format("", name, *cells, f"{values['ndcg@20']:.4f}"))
    for name, values in numbers.items():
        emit(
            f"  {name}: epochs wall/cpu s {[(round(w, 3), round(c, 3)) for w, c in values['epochs']]}; "
            f"first eval {tuple(round(s, 4) for s in values['eval_first'])}"
        )
    emit("")


def header(args, config, dataset_line, report):
    """The report's first lines: command, device, seed, data and settings."""
    report.head(
        "LF-MMLGCN vs RecBole's LightGCN: epoch and full-sort evaluation time",
        args,
        config["device"],
        f"{dataset_line}; {split_text(config)}",
    )
    report.emit(
        f"settings: epochs={args.epochs} embedding_size={args.embedding_size} "
        f"n_layers={args.n_layers} train_batch_size={args.train_batch_size} reg_weight=1e-4 "
        f"eval_batch_size={config['eval_batch_size']} learner={config['learner']}; "
        f"LF-MMLGCN modalities {config['modalities']}"
    )
    report.emit(
        "s/epoch, cpu s/ep: median epoch, wall-clock and process CPU time (models take "
        "turns); eval, cpu eval: full-sort test evaluation from uncached embeddings, best of "
        f"{args.eval_repeats} after a first call with one-time setup; x LGCN: time / "
        "LightGCN's time on the same path and clock"
    )
    report.emit()


def main(argv=None):
    args = parse_args(argv)
    prepare(args)
    models = [("LightGCN", "LightGCN", {})]
    models += [(f"LFMMLGCN {v}", "LFMMLGCN", VARIANTS[v]) for v in args.variants.split(",")]
    report = Report()
    with scratch_dir() as workdir:
        for index, path in enumerate(args.paths.split(",")):
            entries = [(name, *build_entry(args, model, settings, workdir)) for name, model, settings in models]
            if index == 0:
                config, train_data = entries[1][1], entries[1][2]
                dataset = train_data._dataset
                dataset_line = (
                    f"{args.dataset} ({dataset.user_num - 1} users, {dataset.item_num - 1} items, "
                    f"{len(dataset)} training interactions)"
                )
                header(args, config, dataset_line, report)
            numbers = measure(PATHS[path], entries, args)
            format_path(path, numbers, report.emit)
    report.save(args.output)


if __name__ == "__main__":
    main()
