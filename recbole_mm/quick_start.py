"""Plugin-aware versions of RecBole's quick-start functions.

RecBole's ``run_recbole`` and ``load_data_and_model`` look the model up again by its *string* name
in RecBole's own packages, so a model living outside RecBole cannot run; ``recbole.quick_start``
also imports Ray at import time. These versions resolve every name through
:mod:`recbole_mm.registry`, never import Ray, give each run its own checkpoint name, and write a
JSON record next to the checkpoint.
"""

import logging
import os
import time
import uuid

import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.utils import get_local_time, init_logger, init_seed, set_color

from recbole_mm.compat import checkpoint as safe_checkpoint
from recbole_mm.config import Config, ConfigError, cutoffs
from recbole_mm.evaluation.cold_start import data_preparation, evaluate_cold_start
from recbole_mm.fast_path import choose_trainer
from recbole_mm.per_user import check_supported, per_user_results
from recbole_mm.record import RunRecord
from recbole_mm.registry import registry


def create_dataset(config):
    """RecBole's ``create_dataset``, or the plugin dataset class the model or config asks for."""
    dataset_class = registry.get_dataset_class(config["model"], config["dataset_class"])
    if dataset_class is None:
        return recbole_create_dataset(config)
    return dataset_class(config)


def get_trainer(config):
    """The trainer class for ``config``: config key ``trainer``, ``<Model>Trainer`` or RecBole's.

    With ``fast_path: True`` and no ``trainer`` configured, RecBole's plain ``Trainer`` becomes
    :class:`~recbole_mm.fast_path.FastTrainer`.
    """
    trainer = registry.get_trainer(config["MODEL_TYPE"], config["model"], config["trainer"])
    if config["fast_path"] and not config["trainer"]:
        return choose_trainer(trainer)
    return trainer


def set_flush_denormal(flush):
    """Apply config key ``flush_denormal`` to this process's CPU arithmetic (``None``: leave it).

    Returns:
        bool or None: whether subnormal floats are now flushed to zero; ``None`` when unchanged.
    """
    if flush is None:
        return None
    if torch.set_flush_denormal(bool(flush)) or not flush:
        return bool(flush)
    logging.getLogger().warning(
        "flush_denormal: True has no effect on this CPU (torch.set_flush_denormal needs x86 "
        "with SSE3); subnormal floats are kept"
    )
    return False


def check_topk(config, dataset):
    """Fail before training, not at the first evaluation, if a ranked list is longer than the
    catalogue: RecBole's ``torch.topk`` over ``[users, item_num]`` scores stops with "selected index
    k out of range", and a k equal to ``item_num`` ranks the padding item.
    """
    modes = set(config["eval_args"]["mode"].values())
    if modes == {"labeled"}:  # value metrics (AUC, LogLoss) only, no ranked lists
        return
    topk = cutoffs(config["topk"])
    n_items = dataset.item_num - 1  # internal id 0 is padding
    if max(topk) > n_items:
        raise ConfigError(
            f"topk {topk} asks for top-{max(topk)} lists, but dataset '{config['dataset']}' has "
            f"{n_items} items: choose topk values of at most {n_items}, and a valid_metric at one "
            "of them"
        )


def load_data(config):
    """Seed, log and load the data of ``config`` exactly as :func:`run` does, so that anything
    evaluated beside a run (a baseline, a report) sees the same split.

    Returns:
        tuple: ``(dataset, train_data, valid_data, test_data)``.
    """
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    set_flush_denormal(config["flush_denormal"])
    logger = logging.getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    check_topk(config, dataset)
    return (dataset, *data_preparation(config, dataset))


def _build(config):
    """Seed, log, load the data and build the model for ``config``."""
    dataset, train_data, valid_data, test_data = load_data(config)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = config.model_class(config, train_data._dataset).to(config["device"])
    return dataset, train_data, valid_data, test_data, model


def run(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    saved=True,
    cmd_args=None,
):
    """Train and evaluate one model: RecBole's ``run_recbole``, for RecBole and plugin models.

    Args:
        model (str or type or None): model name or class (else taken from the config).
        dataset (str or None): dataset name (else taken from the config).
        config_file_list (list of str or None): YAML config files.
        config_dict (dict or None): parameters.
        saved (bool): keep the best checkpoint and evaluate the test set with it.
        cmd_args (list of str or None): ``--key=value`` arguments, winning over everything else.

    Returns:
        dict: ``model``, ``dataset``, ``valid_metric``, ``best_valid_score``, ``valid_score_bigger``,
        ``best_valid_result``, ``test_result``, ``checkpoint`` (path or None), ``record``
        (path of the JSON record) and, with ``save_per_user: True``, ``per_user`` (each test
        user's metric values, see :mod:`recbole_mm.per_user`); with ``cold_start_items``,
        ``test_result`` is the warm test set and ``cold_test_result`` the cold items' (see
        :mod:`recbole_mm.evaluation.cold_start`).
    """
    config = Config(model, dataset, config_file_list, config_dict, cmd_args=cmd_args)
    dataset_obj, train_data, valid_data, test_data, model_obj = _build(config)
    if config["save_per_user"]:
        check_supported(test_data)
    logger = logging.getLogger()
    logger.info(model_obj)

    trainer = get_trainer(config)(config, model_obj)
    # RecBole names checkpoints <Model>-<time to the second>.pth: parallel runs would collide
    trainer.saved_model_file = os.path.join(
        config["checkpoint_dir"],
        f"{config['model']}-{config['dataset']}-{get_local_time()}-{uuid.uuid4().hex[:6]}.pth",
    )
    record = RunRecord(config, trainer)

    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    fit_seconds = time.perf_counter() - start
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    cold_test_result = evaluate_cold_start(trainer, dataset_obj, config["show_progress"])
    if cold_test_result is not None:
        logger.info(set_color("cold test result", "yellow") + f": {cold_test_result}")

    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "valid_metric": config["valid_metric"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid_result or {}),
        "test_result": dict(test_result or {}),
        "checkpoint": trainer.saved_model_file if saved else None,
    }
    if cold_test_result is not None:
        result["cold_test_result"] = dict(cold_test_result)
    if config["save_per_user"]:
        result["per_user"] = per_user_results(trainer, test_data)
    result["record"] = record.write(result, fit_seconds)
    return result


run_recbole = run


def load_checkpoint(model_file, map_location=None):
    """Load a RecBole or recbole_mm checkpoint safely (``weights_only=True``, allow-listed config).

    Returns:
        tuple: (Config, checkpoint dict).
    """
    registry.load()
    plugins = [entry.obj for entry in registry.entries("model").values()]  # RecBole's are known anyway
    checkpoint = safe_checkpoint.load(model_file, map_location=map_location, known_classes=plugins)
    return Config.from_checkpoint(checkpoint["config"]), checkpoint


def load_data_and_model(model_file, state=None):
    """Rebuild config, data and trained model from a checkpoint (RecBole's, for plugin models too).

    Args:
        model_file (str): the checkpoint.
        state (str or None): RecBole's log level while rebuilding (``"WARNING"``: no config and
            dataset summaries); None: the checkpoint's.

    Returns:
        tuple: (config, model, dataset, train_data, valid_data, test_data).
    """
    config, checkpoint = load_checkpoint(model_file, map_location="cpu")
    if state is not None:
        config["state"] = state
    dataset, train_data, valid_data, test_data, model = _build(config)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
