"""The JSON record every run writes next to its checkpoint.

It holds what is needed to trust and regenerate a result: the final config, best-valid and test
metrics, per-epoch timings, library versions, the device and the command line.
"""

import enum
import functools
import json
import os
import platform
import sys
import time
from importlib import metadata

import torch

from recbole_mm.files import replace_atomically
from recbole_mm.params import parameter_report

RECORD_VERSION = 1
_PACKAGES = ("recbole_mm", "recbole", "torch", "numpy", "scipy", "pandas", "torch_geometric")


def versions():
    """{package: version} of the libraries a result depends on (dict)."""
    found = {"python": platform.python_version()}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def describe_device(device):
    """A readable name of ``device`` (str), e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)`` or
    ``cpu (AMD EPYC, AVX512, 2 cores)`` (the vector instructions torch's CPU kernels use)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{device} ({cpu_name()}, {capability}, {os.cpu_count()} cores)"


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo`` on Linux; else what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def kept_epoch(valid_curve, bigger=True):
    """The index (0-based) of the epoch whose model RecBole's early stopping keeps (int).

    Args:
        valid_curve (list of float): the validation score after each epoch, as RecBole compares
            it (``valid_metric``, rounded to ``metric_decimal_place``).
        bigger (bool): ``valid_metric_bigger``.

    ``recbole.utils.early_stopping`` takes a score that ties the best as a new best, so this is
    the last epoch that reaches the best score, not the first.
    """
    best = max(valid_curve) if bigger else min(valid_curve)
    return len(valid_curve) - 1 - valid_curve[::-1].index(best)


def to_jsonable(value):
    """Config values as JSON: enums by name, devices and other objects as strings."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


class RunRecord:
    """Times a trainer's epochs and writes the run's JSON record next to its checkpoint.

    Args:
        config (Config): the run's config.
        trainer (AbstractTrainer): its ``_train_epoch`` / ``_valid_epoch`` are timed.
    """

    def __init__(self, config, trainer):
        self.config = config
        self.trainer = trainer
        self.train_seconds = []
        self.valid_seconds = []
        for name, sink in (("_train_epoch", self.train_seconds), ("_valid_epoch", self.valid_seconds)):
            if hasattr(trainer, name):
                setattr(trainer, name, _timed(getattr(trainer, name), sink))

    def write(self, result, fit_seconds):
        """Write the record for ``result`` (as returned by ``run``); returns its path (str)."""
        checkpoint = self.trainer.saved_model_file
        path = os.path.splitext(checkpoint)[0] + ".json"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        payload = {
            "record_version": RECORD_VERSION,
            "model": result["model"],
            "dataset": result["dataset"],
            "checkpoint": result["checkpoint"],
            "command": sys.argv,
            "best_valid_score": to_jsonable(result["best_valid_score"]),
            "valid_metric": result["valid_metric"],
            "best_valid_result": to_jsonable(result["best_valid_result"]),
            "test_result": to_jsonable(result["test_result"]),
            "timings": {
                "fit_seconds": round(fit_seconds, 4),
                "train_epoch_seconds": [round(s, 4) for s in self.train_seconds],
                "valid_epoch_seconds": [round(s, 4) for s in self.valid_seconds],
            },
            "trainer": type(self.trainer).__name__,
            "device": describe_device(self.config["device"]),
            "seed": self.config["seed"],
            "parameters": parameter_report(self.trainer.model),
            "versions": versions(),
            "config": to_jsonable(self.config.final_config_dict),
        }
        if "cold_test_result" in result:
            payload["cold_test_result"] = to_jsonable(result["cold_test_result"])
        if "per_user" in result:
            payload["per_user"] = result["per_user"]
        replace_atomically(path, lambda f: f.write(json.dumps(payload, indent=2) + "\n"))
        return path


def _timed(method, sink):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - start)

    return wrapper
