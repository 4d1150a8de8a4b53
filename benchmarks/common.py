"""What the speed benchmarks beside this file share: the data path, clocks, a scratch working
folder and the report (printed as it goes, written atomically at the end, headed by the command,
device, versions, seed and data)."""

import argparse
import contextlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import recbole
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

import recbole_mm
from recbole_mm import create_dataset
from recbole_mm.files import replace_atomically
from recbole_mm.record import describe_device

BUNDLED = Path(recbole.__file__).parent / "dataset_example"


def argument_parser(doc):
    """An ``ArgumentParser`` described by ``doc``'s first paragraph, with the options every
    benchmark takes: ``--dataset``, ``--data-path``, ``--seed``, ``--device``, ``--threads``,
    ``--output``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        default="ml-100k",
        help="dataset name (atomic files <data-path>/<dataset>/, read with its <dataset>.yaml if any)",
    )
    parser.add_argument(
        "--data-path", help=f"folder holding the dataset folder (default: RecBole's bundled {BUNDLED})"
    )
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1 ... (auto: the config's choice)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's); 1 steadies timings on a shared machine",
    )
    parser.add_argument("--output", help="also write the report to this file")
    return parser


def prepare(args):
    """Apply ``args.threads`` (torch CPU threads, when given) and resolve ``args.data_path``
    (default: RecBole's bundled datasets, which hold only ml-100k and a few toy sets)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_path is None:
        if not (BUNDLED / args.dataset).is_dir():
            raise SystemExit(f"dataset '{args.dataset}' is not bundled with RecBole; pass --data-path")
        args.data_path = str(BUNDLED)
    args.data_path = str(Path(args.data_path).resolve())


def dataset_config_files(args):
    """[the dataset's own ``<data-path>/<dataset>/<dataset>.yaml``] when there is one (as
    ``recbole-mm convert`` writes: field names, a kept split's ``benchmark_filename``), else None."""
    dataset_yaml = Path(args.data_path) / args.dataset / f"{args.dataset}.yaml"
    return [str(dataset_yaml)] if dataset_yaml.is_file() else None


def split_text(config):
    """How the data was split (str): the dataset's own files when ``benchmark_filename`` is set
    (RecBole then ignores ``eval_args``'s split), else ``eval_args``."""
    if config["benchmark_filename"]:
        files, mode = config["benchmark_filename"], config["eval_args"]["mode"]
        return f"split: the dataset's files {files}; eval_args mode {mode}"
    return f"eval_args {config['eval_args']}"


def base_settings(args, checkpoint_dir, metrics, k):
    """Config keys every benchmarked model gets (dict): data, checkpoints, seed, epochs, quiet
    logging, ``metrics`` at top-``k`` and NDCG@k as the validation metric."""
    return {
        "data_path": args.data_path,
        "checkpoint_dir": checkpoint_dir,
        "seed": args.seed,
        "epochs": args.epochs,
        "metrics": metrics,
        "topk": [k],
        "valid_metric": f"NDCG@{k}",
        "state": "WARNING",
        "show_progress": False,
    }


def on_device(config, device):
    """Point ``config`` at ``device`` (``"auto"``: leave the config's choice); returns it."""
    if device != "auto":
        config["device"] = torch.device(device)
        config["use_gpu"] = config["device"].type == "cuda"
    return config


def build(config):
    """Data and a freshly seeded model for ``config``, as every path of a benchmark gets them
    (same seed: same split and same initial weights): (dataset, train, test, model)."""
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    return dataset, train_data, test_data, model


def clocked(device, fn, *args, **kwargs):
    """(result, wall seconds, process CPU seconds) of ``fn(*args, **kwargs)``, waiting for the
    device to finish. On a shared CPU, CPU seconds leave out the time other processes held the
    cores; on a GPU they count only the host's work."""
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda _: None
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    synchronize(device)
    return result, time.perf_counter() - wall, time.process_time() - cpu


@contextlib.contextmanager
def scratch_dir():
    """Work in a temporary folder (yielded): RecBole's Trainer writes ``./log_tensorboard`` and
    that must not land in the caller's folder."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        try:
            yield workdir
        finally:
            os.chdir(here)


class Report:
    """Lines printed as they come and kept for :meth:`save`."""

    def __init__(self):
        self.lines = []

    def emit(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def head(self, title, args, device, dataset_line):
        """The first lines: title, the command as run, device and versions, seed, data."""
        script = Path(sys.argv[0])
        command = " ".join(["python", f"benchmarks/{script.name}"] + sys.argv[1:])
        versions = (
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
            f"python {platform.python_version()}; recbole {recbole.__version__}; "
            f"recbole_mm {recbole_mm.__version__}"
        )
        for line in (
            f"# {title} (benchmarks/{script.name})",
            f"command: {command}",
            f"device: {describe_device(device)}; {versions}",
            f"seed: {args.seed}",
            f"dataset: {dataset_line}",
        ):
            self.emit(line)

    def save(self, path):
        """Write the lines to ``path`` (atomically) when ``path`` is given."""
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(path, lambda f: f.write("\n".join(self.lines) + "\n"))
