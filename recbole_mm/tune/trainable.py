"""The Ray Tune trainable: one trial = one RecBole training run, reported at every evaluation.

RecBole's own Ray path (``recbole.quick_start.objective_function``) reports once, after training,
so a scheduler such as ASHA cannot stop a bad trial early; it also evaluates the test set in every
trial. Here a trial builds config, data and model with recbole_mm's quick-start internals, trains
with RecBole's ``fit`` (so ``eval_step``, early stopping and checkpointing behave as in a normal
run) and reports the validation metrics after every evaluation epoch. The test set is never
evaluated in a trial: the driver evaluates each model's best configuration once, at the end.
"""

import logging
import os
from dataclasses import dataclass

import ray
import torch
from ray.air import session

from recbole_mm.config import Config
from recbole_mm.files import replace_atomically
from recbole_mm.quick_start import _build, get_trainer
from recbole_mm.tune.space import SearchSpace

FAILURE_FILE = "failure.txt"  # the exception a trial died of, one line, in its trial directory
CHECKPOINT_FOLDER = "checkpoints"  # RecBole's checkpoint of the trial's best epoch


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of one model's search shares (pickled to Ray's workers).

    Attributes:
        model (str): the model's name.
        dataset (str): the dataset's name.
        config_files (tuple of str): absolute paths of the user's YAML config files.
        fixed (dict): settings of every trial: absolute ``data_path``, ``epochs`` (the budget),
            ``seed``, ...
        space (SearchSpace): decodes a trial's sampled values.
        threads (int): torch CPU threads of a trial: the CPUs Ray reserves for it, rounded down
            (Ray starts every worker with ``OMP_NUM_THREADS=1``, whatever it reserved).
    """

    model: str
    dataset: str
    config_files: tuple
    fixed: dict
    space: SearchSpace
    threads: int = 1


def device_settings(gpu_ids):
    """``gpu_id`` and ``use_gpu`` for a trial Ray gave the GPUs ``gpu_ids`` (list; may be empty).

    Ray has set ``CUDA_VISIBLE_DEVICES`` to exactly these ids, and RecBole's ``Config`` writes its
    ``gpu_id`` into ``CUDA_VISIBLE_DEVICES``: with ``gpu_id`` equal to Ray's ids that write changes
    nothing, and ``cuda`` (``cuda:0`` among the visible devices) is the GPU Ray assigned. Without a
    GPU, an empty ``gpu_id`` hides every GPU and RecBole picks the CPU.

    Returns:
        dict: ``{"gpu_id": str, "use_gpu": bool}``.
    """
    ids = ",".join(str(i) for i in gpu_ids)
    return {"gpu_id": ids, "use_gpu": bool(ids)}


def trial_config_dict(setup, sampled, trial_dir, gpu_ids):
    """The ``config_dict`` of one trial.

    Args:
        setup (TrialSetup): the search's shared settings.
        sampled (dict): the values Ray sampled for this trial (encoded, see
            :meth:`SearchSpace.decode`).
        trial_dir (str): the trial's directory.
        gpu_ids (list): the GPU ids Ray assigned to the trial.

    Returns:
        dict: the fixed settings, the sampled values, the device and the trial's own
        ``checkpoint_dir`` (parallel trials never share a checkpoint file).
    """
    return {
        **setup.fixed,
        **setup.space.decode(sampled),
        **device_settings(gpu_ids),
        "checkpoint_dir": os.path.join(trial_dir, CHECKPOINT_FOLDER),
    }


def _fresh_logging():
    """Drop the root logger's handlers: RecBole's ``init_logger`` calls ``logging.basicConfig``,
    which does nothing when handlers exist, so in an actor Ray reuses for the next trial that trial
    would log into the previous trial's file."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()


def _keep_last_validation(trainer):
    """Wrap ``trainer._valid_epoch`` so that its last result stays readable.

    Returns:
        dict: ``{"result": {metric: value}}`` after each validation.
    """
    last = {}
    valid_epoch = trainer._valid_epoch

    def keep(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        last["result"] = result
        return score, result

    trainer._valid_epoch = keep
    return last


def train_trial(sampled, setup):
    """Ray Tune function trainable: train one configuration, report after every evaluation.

    Each report holds ``epoch`` (epochs trained so far: the scheduler's time axis),
    ``valid_score`` (the config's ``valid_metric`` this epoch), ``best_valid_score`` (RecBole's
    best so far: what trials are compared on), ``early_stopped`` (RecBole's early stopping ends
    the trial now), ``finished`` (this is the trial's last evaluation) and ``valid_<metric>`` for
    every validation metric.

    Args:
        sampled (dict): the values Ray sampled for this trial.
        setup (TrialSetup): the search's shared settings.
    """
    trial_dir = session.get_trial_dir()
    torch.set_num_threads(setup.threads)
    try:
        config_dict = trial_config_dict(setup, sampled, trial_dir, ray.get_gpu_ids())
        config = Config(setup.model, setup.dataset, list(setup.config_files), config_dict)
        _fresh_logging()
        _, train_data, valid_data, _, model = _build(config)  # the test loader stays unused
        trainer = get_trainer(config)(config, model)
        trainer.saved_model_file = os.path.join(config["checkpoint_dir"], f"{setup.model}.pth")
        last = _keep_last_validation(trainer)

        def report(epoch_idx, valid_score):
            stopped = trainer.cur_step > trainer.stopping_step  # RecBole's early_stopping rule
            epochs = epoch_idx + 1
            metrics = {f"valid_{k}": float(v) for k, v in last["result"].items()}
            session.report({
                "epoch": epochs,
                "valid_score": float(valid_score),
                "best_valid_score": float(trainer.best_valid_score),
                "early_stopped": stopped,
                "finished": stopped or epochs + trainer.eval_step > trainer.epochs,
                **metrics,
            })

        trainer.fit(
            train_data, valid_data, saved=True, show_progress=False, callback_fn=report
        )
    except Exception as error:
        message = f"{type(error).__name__}: {error}".replace("\n", " ")
        replace_atomically(os.path.join(trial_dir, FAILURE_FILE), lambda f: f.write(message + "\n"))
        raise
