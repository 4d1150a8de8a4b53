"""Seconds per training epoch with subnormal floats kept and flushed to zero (config key
``flush_denormal``), in one process, on the same data, device, config and seed.

A large ``weight_decay`` pulls weights that get no gradient towards zero until they fall below
float32's smallest normal number (1.2e-38); arithmetic on such subnormal numbers is many times
slower on x86 CPUs. The model trains ``--epochs`` epochs twice from the same initial weights and
samples, first with ``flush_denormal: False`` then ``True``; printed per epoch: wall and process
CPU seconds of both runs and their ratio, then the test NDCG@10 of each after the last epoch
(flushing changes results only through the values it zeroes) and the share of subnormal parameter
values left in the unflushed model.

Example::

    python benchmarks/flush_denormal.py --model DMF --weight-decay 0.01 --epochs 6 --threads 1

This is a benchmark, not a test: nothing here asserts a speed.
"""

import torch
from common import (  # benchmarks/common.py
    Report, argument_parser, base_settings, build, clocked, dataset_config_files, on_device,
    prepare, scratch_dir, split_text,
)

from recbole_mm import Config, get_trainer
from recbole_mm.quick_start import set_flush_denormal

SMALLEST_NORMAL = torch.finfo(torch.float32).tiny


def parse_args(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--model", default="DMF", help="any model RecBole or a plugin provides")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=6)
    return parser.parse_args(argv)


def subnormal_share(model):
    """Share of the model's parameter values that are subnormal (float)."""
    values = torch.cat([p.detach().flatten().cpu() for p in model.parameters()])
    magnitude = values.abs()
    return float(((magnitude > 0) & (magnitude < SMALLEST_NORMAL)).float().mean())


def train(args, flush, checkpoint_dir):
    """Train ``args.model`` with subnormals kept (``flush`` False) or flushed (True).

    Returns:
        tuple: (config, dataset, [(wall s, CPU s)] per epoch, test NDCG@10 after the last
        epoch, the trained model).
    """
    settings = {
        **base_settings(args, checkpoint_dir, ["NDCG"], 10),
        "weight_decay": args.weight_decay,
        "learning_rate": args.learning_rate,
        "flush_denormal": flush,
    }
    config = on_device(
        Config(args.model, args.dataset, dataset_config_files(args), settings), args.device
    )
    set_flush_denormal(config["flush_denormal"])  # as load_data applies the key in a run
    dataset, train_data, test_data, model = build(config)
    trainer = get_trainer(config)(config, model)
    times = []
    for epoch in range(args.epochs):
        _, wall, cpu = clocked(trainer.device, trainer._train_epoch, train_data, epoch)
        times.append((wall, cpu))
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    return config, dataset, times, result["ndcg@10"], model


def main(argv=None):
    args = parse_args(argv)
    prepare(args)
    report = Report()
    runs = {}
    try:
        with scratch_dir() as workdir:
            for flush in (False, True):
                runs[flush] = train(args, flush, workdir)
    finally:
        torch.set_flush_denormal(False)
    config, dataset = runs[False][:2]
    report.head(
        f"{args.model}: subnormal floats kept vs flushed",
        args,
        config["device"],
        f"{args.dataset} ({dataset.user_num - 1} users, {dataset.item_num - 1} items, "
        f"{dataset.inter_num} interactions; {split_text(config)})",
    )
    report.emit(
        f"weight_decay {args.weight_decay:g}, learning_rate {args.learning_rate:g}, "
        f"{args.epochs} epochs, train_batch_size {config['train_batch_size']}"
    )
    report.emit()
    report.emit("| epoch | kept: wall s | kept: CPU s | flushed: wall s | flushed: CPU s | CPU ratio |")
    report.emit("| --- | --- | --- | --- | --- | --- |")
    kept, flushed = runs[False][2], runs[True][2]
    for epoch, (a, b) in enumerate(zip(kept, flushed), start=1):
        report.emit(
            f"| {epoch} | {a[0]:.2f} | {a[1]:.2f} | {b[0]:.2f} | {b[1]:.2f} | {a[1] / b[1]:.1f}x |"
        )
    report.emit()
    report.emit(
        f"test NDCG@10 after the last epoch: kept {runs[False][3]:.4f}, flushed {runs[True][3]:.4f}; "
        f"subnormal parameter values at the end, kept: {subnormal_share(runs[False][4]):.1%}"
    )
    report.save(args.output)


if __name__ == "__main__":
    main()
