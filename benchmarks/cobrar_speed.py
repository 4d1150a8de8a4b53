"""CoBraR against RecBole's DMF at equal architecture: seconds per training epoch and per full-sort
evaluation, in one process, on the same data and device.

DMF gets CoBraR's architecture through :func:`recbole_mm.params.dmf_like` (each of its two towers
= CoBraR's projection and branch), and both models get the same training rows: the same split,
``train_batch_size`` and negative sampling (CoBraR's: 5 uniform negatives per positive, POINTWISE),
the same learner and seed. Each trainer path (``--trainers``: RecBole's ``Trainer``, recbole_mm's
``FastTrainer``) trains both models ``--epochs`` epochs, alternating the two models epoch by epoch
so that a change of load on a shared machine hits both alike; after every epoch the test set is
evaluated full-sort, as a validation step would, so both models re-encode their items with fresh
weights each time (DMF caches its item embeddings until its next training step, CoBraR until its
next train/eval switch). Printed per path and model: the median epoch and the median evaluation in
seconds, on the wall clock and as the process's CPU time (every value is listed too; on a shared
machine the CPU time leaves the other processes' load out), NDCG@5 after the last epoch (DMF with
these rows may not learn: a sanity value, not a result) and the trainable parameters by part
(``recbole_mm.params``); then the DMF / CoBraR ratios.

Examples::

    python benchmarks/cobrar_speed.py --dataset ml-100k --epochs 3
    python benchmarks/cobrar_speed.py --dataset ml-1m --data-path dataset/ --device cuda

A dataset folder with its own ``<dataset>.yaml`` (as ``recbole-mm convert`` writes) is loaded with
it by every benchmark here, so a converted split (``benchmark_filename``) is used as is. On a GPU
the CPU time only counts the host's work. This is a benchmark, not a test: nothing here asserts a speed.
"""

import statistics

from common import (  # benchmarks/common.py
    Report, argument_parser, base_settings, build, clocked, dataset_config_files, on_device, prepare,
    scratch_dir, split_text,
)
from recbole.trainer import Trainer

from recbole_mm import Config, create_dataset
from recbole_mm.fast_path import FastTrainer
from recbole_mm.params import dmf_like, parameter_report

TRAINERS = {"stock": Trainer, "fast": FastTrainer}
MODELS = ("CoBraR", "DMF")


def _int_list(text):
    return [int(size) for size in text.split(",") if size.strip()]


def parse_args(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per model and path")
    parser.add_argument(
        "--trainers", default="stock,fast", help=f"comma-separated, of {', '.join(TRAINERS)}"
    )
    parser.add_argument(
        "--branch-layers",
        type=_int_list,
        help="CoBraR's branch (and each DMF tower), e.g. 2048 or 512,512,256,256 "
        "(default: properties/model/CoBraR.yaml)",
    )
    parser.add_argument("--projection-size", type=int, help="default: CoBraR.yaml")
    parser.add_argument("--embedding-size", type=int, help="default: CoBraR.yaml")
    parser.add_argument(
        "--train-batch-size", type=int, help="rows per training batch (default: CoBraR.yaml)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.trainers.split(",") if name not in TRAINERS]
    if unknown:
        parser.error(f"--trainers: unknown {unknown}; choose from {', '.join(TRAINERS)}")
    return args


def base_config(args, checkpoint_dir):
    """Config keys shared by both models (dict): data, device, seed, sampling, evaluation."""
    config_dict = base_settings(args, checkpoint_dir, ["NDCG"], 5)
    for key, value in (
        ("branch_layers", args.branch_layers),
        ("projection_size", args.projection_size),
        ("embedding_size", args.embedding_size),
        ("train_batch_size", args.train_batch_size),
    ):
        if value is not None:
            config_dict[key] = value
    return config_dict


def configs(args, checkpoint_dir):
    """{model: Config}: CoBraR as configured, DMF with its architecture and training rows."""
    files = dataset_config_files(args)
    shared = base_config(args, checkpoint_dir)
    cobrar = Config("CoBraR", args.dataset, files, shared)
    same_rows = {
        "train_batch_size": cobrar["train_batch_size"],
        "train_neg_sample_args": dict(cobrar["train_neg_sample_args"]),
        "learner": cobrar["learner"],
        "learning_rate": cobrar["learning_rate"],
    }
    dmf = Config("DMF", args.dataset, files, {**shared, **same_rows, **dmf_like(cobrar)})
    return {"CoBraR": on_device(cobrar, args.device), "DMF": on_device(dmf, args.device)}


def run_path(trainer_class, configs_by_model):
    """Train and evaluate both models, alternating epochs; {model: numbers (dict)}."""
    state = {}
    for name, config in configs_by_model.items():
        _, train_data, test_data, model = build(config)
        trainer = trainer_class(config, model)
        trainer.eval_collector.data_collect(train_data)
        state[name] = {
            "trainer": trainer,
            "train_data": train_data,
            "test_data": test_data,
            "parameters": parameter_report(model),
            **{key: [] for key in SERIES},
        }
    for epoch in range(next(iter(configs_by_model.values()))["epochs"]):
        for numbers in state.values():
            trainer = numbers["trainer"]
            _, wall, cpu = clocked(
                trainer.device, trainer._train_epoch, numbers["train_data"], epoch
            )
            numbers["epoch"].append(wall)
            numbers["epoch_cpu"].append(cpu)
            result, wall, cpu = clocked(
                trainer.device, trainer.evaluate, numbers["test_data"], load_best_model=False
            )
            numbers["eval"].append(wall)
            numbers["eval_cpu"].append(cpu)
            numbers["ndcg@5"] = float(result["ndcg@5"])
    for numbers in state.values():
        for key in SERIES:
            numbers[f"{key}_median"] = statistics.median(numbers[key])
        for key in ("trainer", "train_data", "test_data"):
            del numbers[key]
    return state


# timed series, each as a median column: training epoch and evaluation, wall and CPU clocks
SERIES = ("epoch", "epoch_cpu", "eval", "eval_cpu")
ROW = "{:<7} {:<12} {:>9} {:>13} {:>9} {:>11} {:>8} {:>12} {:>10} {:>10}"
HEADINGS = ("s/epoch", "CPU s/epoch", "eval s", "eval CPU s", "ndcg@5")
HEADINGS += ("projections", "branch", "total")
PARTS = ("projections", "branch", "total")


def report_path(path, numbers, emit):
    """Print one trainer path: a row per model, then the DMF / CoBraR ratios."""
    emit(ROW.format(path, "model", *HEADINGS))
    for name in MODELS:
        values = [f"{numbers[name][f'{key}_median']:.3f}" for key in SERIES]
        values.append(f"{numbers[name]['ndcg@5']:.4f}")
        values += [str(numbers[name]["parameters"].get(part, "-")) for part in PARTS]
        emit(ROW.format("", name, *values))

    def ratio(dmf, cobrar):
        return f"{dmf / cobrar:.2f}x" if cobrar else "-"

    times = [ratio(numbers["DMF"][f"{k}_median"], numbers["CoBraR"][f"{k}_median"]) for k in SERIES]
    sizes = [
        ratio(numbers["DMF"]["parameters"][part], numbers["CoBraR"]["parameters"][part])
        for part in PARTS
    ]
    emit(ROW.format("", "DMF/CoBraR", *times, "", *sizes))
    for name in MODELS:
        listed = ", ".join(f"{key} {[round(s, 3) for s in numbers[name][key]]}" for key in SERIES)
        emit(f"  {name} (s): {listed}")
    emit("")


def header(args, configs_by_model, dataset, report):
    """The report's first lines: command, device, seed, data and both configs."""
    cobrar, dmf = configs_by_model["CoBraR"], configs_by_model["DMF"]
    report.head(
        "CoBraR vs RecBole's DMF at equal architecture",
        args,
        cobrar["device"],
        f"{args.dataset} ({dataset.user_num - 1} users, {dataset.item_num - 1} items, "
        f"{dataset.inter_num} interactions); {split_text(cobrar)}",
    )
    for line in (
        (
            f"CoBraR: projection_size={cobrar['projection_size']} "
            f"branch_layers={list(cobrar['branch_layers'])} "
            f"embedding_size={cobrar['embedding_size']} dropout_prob={cobrar['dropout_prob']} "
            f"score={cobrar['score']}"
        ),
        (
            f"DMF: user/item_embedding_size={dmf['user_embedding_size']} "
            f"user/item_hidden_size_list={list(dmf['user_hidden_size_list'])}"
        ),
        (
            f"both: epochs={args.epochs} train_batch_size={cobrar['train_batch_size']} "
            f"learner={cobrar['learner']} learning_rate={cobrar['learning_rate']} "
            f"train_neg_sample_args={dict(cobrar['train_neg_sample_args'])} "
            f"eval_batch_size={cobrar['eval_batch_size']}"
        ),
        (
            "s/epoch: median training epoch; eval s: median full-sort test evaluation, one after "
            "each epoch (item embeddings re-encoded each time); wall clock, and the process's CPU "
            "time (all its threads; other processes' load left out); ratio: DMF / CoBraR"
        ),
        "",
    ):
        report.emit(line)


def main(argv=None):
    args = parse_args(argv)
    prepare(args)
    report = Report()
    with scratch_dir() as workdir:
        configs_by_model = configs(args, workdir)
        header(args, configs_by_model, create_dataset(configs_by_model["CoBraR"]), report)
        for path in args.trainers.split(","):
            report_path(path, run_path(TRAINERS[path], configs_by_model), report.emit)
    report.save(args.output)


if __name__ == "__main__":
    main()
