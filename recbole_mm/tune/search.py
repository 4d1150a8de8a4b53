"""The tuning driver behind ``recbole-mm tune``: search each model, test each best config once.

For the model under test and every baseline, with the same budget (``num_samples`` trials of at
most ``max_epochs`` epochs, the same scheduler, searcher and seed):

1. a Ray Tune search (:func:`search_model`) whose trials report validation metrics after every
   evaluation epoch (:func:`recbole_mm.tune.trainable.train_trial`), so that ASHA can stop
   trailing trials; trials are compared on the config's ``valid_metric`` only;
2. the best trial's configuration is written as YAML and trained again with
   :func:`recbole_mm.quick_start.run`, which evaluates the test set once and writes a JSON record
   with per-user metrics;
3. a report: the trial tables, a best-so-far plot and the comparison of the test records
   (:func:`recbole_mm.compare.compare_files`, significance against the best baseline by
   validation).

Everything lands in ``output``::

    tune.json               the search's settings and progress (a re-run resumes from it)
    ray/<Model>/            Ray Tune's experiment: trial directories, resumable state
    trials/<Model>.csv      one row per trial, rewritten whenever a trial ends (and .json)
    trials.csv              every model's trials
    best/<Model>.yaml       the best configuration, loadable with --config_files
    final/<Model>/          the test run: checkpoint and JSON record
    comparison.md, .csv     test metrics of the best configurations, with significance
    best_so_far.png         best validation metric so far against the trial number
    report.md               the summary

Re-running the same command with the same ``output`` resumes: finished searches and test runs
are skipped, an interrupted search continues with ``Tuner.restore`` (finished trials are kept;
trials that were running start again).
"""

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import ray
import yaml
from ray import air, tune
from ray.air.constants import EXPR_RESULT_FILE
from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.search_generator import SearchGenerator
from ray.tune.utils.serialization import TuneFunctionDecoder

from recbole_mm.config import Config, properties_dir
from recbole_mm.files import replace_atomically
from recbole_mm.quick_start import run
from recbole_mm.registry import _split_paths
from recbole_mm.tune import report
from recbole_mm.tune.space import TuneError, load_space
from recbole_mm.tune.trainable import TrialSetup, train_trial

logger = logging.getLogger(__name__)

SCHEDULERS = ("asha", "fifo")
SEARCHES = ("random", "grid", "bayes")
STATE_FILE = "tune.json"
# Ray saves its experiment state at most every 10 s by default ("auto"): a driver killed in that
# window would run finished trials again after a restore. 0 saves it after every event.
CHECKPOINT_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


@dataclass
class TuneSettings:
    """The arguments of ``recbole-mm tune`` (see ``docs/tune.md``).

    Attributes:
        model (str): the model under test.
        dataset (str): the dataset's name.
        output (str): the folder of everything the search writes; the same folder resumes it.
        baselines (list of str): models tuned with the same budget, for the comparison.
        data_path (str or None): the folder holding ``<dataset>/`` (default: the config's).
        config_files (list of str): YAML config files of every trial and test run.
        space (str or None): the model's search space (default: ``<space_dir>/<model>.yaml``).
        space_dir (str or None): where baselines' spaces are (default: recbole_mm's
            ``properties/tune``).
        num_samples (int): trials per model.
        max_epochs (int): epochs per trial at most (the config's ``epochs``).
        gpus_per_trial (float or None): GPUs per trial (fractions share a GPU); None: 1 when the
            Ray cluster has GPUs, else 0.
        cpus_per_trial (float): CPUs per trial.
        max_concurrent_trials (int or None): at most this many trials at once (None: as many as
            the resources allow).
        scheduler (str): ``asha`` (stops trailing trials) or ``fifo`` (every trial runs out).
        grace_period (int): ASHA: epochs every trial gets before it can be stopped.
        reduction_factor (int): ASHA: keep the best 1/reduction_factor at each rung.
        search (str): ``random``, ``grid`` (the ``grid`` keys, in order) or ``bayes`` (Optuna's TPE).
        address (str or None): an existing Ray cluster; None starts a local one.
        seed (int or None): the seed of every trial, test run and searcher (None: the config's).
        verbose (int): Ray Tune's console verbosity (0-3).
    """

    model: str
    dataset: str
    output: str
    baselines: list = field(default_factory=list)
    data_path: str = None
    config_files: list = field(default_factory=list)
    space: str = None
    space_dir: str = None
    num_samples: int = 8
    max_epochs: int = 20
    gpus_per_trial: float = None
    cpus_per_trial: float = 1.0
    max_concurrent_trials: int = None
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 3
    search: str = "random"
    address: str = None
    seed: int = None
    verbose: int = 1

    def check(self):
        """Raise :class:`TuneError` for settings that cannot run, saying what to change."""
        if self.scheduler not in SCHEDULERS:
            raise TuneError(f"--scheduler {self.scheduler}: choose one of {', '.join(SCHEDULERS)}")
        if self.search not in SEARCHES:
            raise TuneError(f"--search {self.search}: choose one of {', '.join(SEARCHES)}")
        if self.num_samples < 1 or self.max_epochs < 1:
            raise TuneError("--num-samples and --max-epochs must be at least 1")
        if self.cpus_per_trial <= 0:
            raise TuneError("--cpus-per-trial must be positive (fractions such as 0.5 are fine)")
        gpus = self.gpus_per_trial
        if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
            raise TuneError(
                f"--gpus-per-trial {gpus}: use a fraction of one GPU (e.g. 0.25: four trials per "
                "GPU) or a whole number of GPUs"
            )
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise TuneError("--max-concurrent-trials must be at least 1")
        if self.scheduler == "asha":
            if self.reduction_factor < 2:
                raise TuneError("--reduction-factor must be at least 2")
            if not 1 <= self.grace_period < self.max_epochs:
                raise TuneError(
                    f"ASHA cannot stop a trial when --grace-period ({self.grace_period}) is not "
                    f"between 1 and --max-epochs ({self.max_epochs}) - 1: lower --grace-period, "
                    "raise --max-epochs or use --scheduler fifo"
                )
        if self.model in self.baselines:
            raise TuneError(f"--baselines lists the model under test, {self.model}: remove it")
        if len(set(self.baselines)) != len(self.baselines):
            raise TuneError(f"--baselines lists a model twice: {', '.join(self.baselines)}")

    @property
    def models(self):
        """The model under test, then the baselines (list of str)."""
        return [self.model] + list(self.baselines)

    def space_path(self, model):
        """The search-space file of ``model`` (Path)."""
        if model == self.model and self.space:
            return Path(self.space)
        folder = Path(self.space_dir) if self.space_dir else Path(str(properties_dir() / "tune"))
        return folder / f"{model}.yaml"


@dataclass
class ModelPlan:
    """One model's search, resolved in the driver before Ray starts.

    Attributes:
        setup (TrialSetup): what its trials share.
        metric (str): the validation metric as RecBole reports it, e.g. ``ndcg@10``.
        mode (str): ``max`` or ``min``.
    """

    setup: TrialSetup
    metric: str
    mode: str

    @property
    def model(self):
        """The model's name (str)."""
        return self.setup.model

    @property
    def space(self):
        """Its search space (SearchSpace)."""
        return self.setup.space


def _absolute(value):
    """A path setting (str, ``os.pathsep``-separated str or list) made absolute; None stays."""
    if isinstance(value, (list, tuple)):
        return [os.path.abspath(os.path.expanduser(p)) for p in _split_paths(value)]
    if value:
        return os.pathsep.join(os.path.abspath(os.path.expanduser(p)) for p in _split_paths(value))
    return value


def plan_model(settings, model):
    """Resolve ``model``'s search: its space, its fixed settings and the validation metric.

    Trials run in their own directories (Ray changes into them), possibly on other machines, so
    every path a trial needs is made absolute here: ``data_path``, ``feature_path``,
    ``plugin_path`` and the config files.

    Raises:
        TuneError: a missing or invalid space, a space key the model does not have, or
            ``eval_step`` < 1 (nothing would be reported).
    """
    space = load_space(settings.space_path(model))
    config_files = [os.path.abspath(f) for f in settings.config_files]
    for path in config_files:
        if not os.path.isfile(path):
            raise TuneError(f"config file {path} not found: check --config-files")
    user = {"data_path": os.path.abspath(settings.data_path)} if settings.data_path else {}
    if settings.seed is not None:
        user["seed"] = settings.seed
    visible = os.environ.get(VISIBLE_DEVICES)
    config = Config(model, settings.dataset, config_files, user)
    # RecBole's Config wrote its gpu_id into CUDA_VISIBLE_DEVICES: put the driver's back, or the
    # local Ray started next would see that one GPU only
    if visible is None:
        os.environ.pop(VISIBLE_DEVICES, None)
    else:
        os.environ[VISIBLE_DEVICES] = visible
    space.check_keys(config.final_config_dict, model)
    if settings.search == "grid":
        space.grid_points(settings.num_samples)  # fails now, not after the models before it
    if not config["eval_step"] or config["eval_step"] < 1:
        raise TuneError(
            f"{model}: eval_step is {config['eval_step']}, so a trial would never be evaluated; "
            "set eval_step: 1 (or more) in a --config-files YAML"
        )
    if not os.path.isdir(config["data_path"]):  # RecBole's data_path ends with the dataset's folder
        raise TuneError(
            f"dataset folder {os.path.abspath(config['data_path'])} not found: pass --data-path "
            f"DIR, the folder that holds {settings.dataset}/"
        )
    data_path = os.path.dirname(os.path.normpath(config["data_path"]))
    fixed = {"data_path": os.path.abspath(data_path), "epochs": settings.max_epochs,
             "seed": config["seed"]}
    for key in ("feature_path", "plugin_path"):
        if config[key]:
            fixed[key] = _absolute(config[key])
    threads = max(1, int(settings.cpus_per_trial))
    setup = TrialSetup(model, settings.dataset, tuple(config_files), fixed, space, threads)
    mode = "max" if config["valid_metric_bigger"] else "min"
    return ModelPlan(setup, config["valid_metric"].lower(), mode)


class TrialTable(tune.Callback):
    """Rewrites ``trials/<Model>.json`` and ``.csv`` whenever one of the search's trials ends.

    Ray pickles it with the experiment, so a restored search goes on writing the same files; the
    rows come from all of Ray's trials, the restored ones included.
    """

    def __init__(self, plan, folder):
        self.plan = plan
        self.folder = str(folder)

    def _write(self, trials, failed_trial=None):
        rows = report.trial_rows(self.plan.model, trials, self.plan.space, failed_trial)
        base = os.path.join(self.folder, self.plan.model)
        report.write_rows_json(base + ".json", rows)
        report.write_rows_csv(base + ".csv", rows, self.plan.metric)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._write(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._write(trials, failed_trial=trial)

    def on_experiment_end(self, trials, **info):
        self._write(trials)


def _search_algorithm(settings, plan, seed):
    """Ray's searcher for ``settings.search`` (grid points first for ``grid``)."""
    limit = settings.max_concurrent_trials
    if settings.search == "bayes":
        try:
            from ray.tune.search.optuna import OptunaSearch

            searcher = OptunaSearch(seed=seed)
        except (ImportError, AssertionError) as error:
            raise TuneError(
                "--search bayes needs Optuna: pip install 'optuna>=3.0,<4' "
                f"(or use --search random) [{error}]"
            ) from error
        return ResumableSearchGenerator(ConcurrencyLimiter(searcher, limit) if limit else searcher)
    points = plan.space.grid_points(settings.num_samples) if settings.search == "grid" else None
    return ResumableVariantGenerator(points_to_evaluate=points, max_concurrent=limit or 0, random_state=seed)


def _saved_trials(experiment_dir):
    """The ids of the trials in the experiment state Ray restores, and of those that had ended."""
    with open(_find_newest_experiment_checkpoint(experiment_dir), encoding="utf-8") as handle:
        saved = json.load(handle, cls=TuneFunctionDecoder)["checkpoints"]
    trials = [json.loads(state, cls=TuneFunctionDecoder) for state in saved]
    ended = {t["trial_id"] for t in trials if t["status"] in (Trial.TERMINATED, Trial.ERROR)}
    return {t["trial_id"] for t in trials}, ended


class ResumableVariantGenerator(BasicVariantGenerator):
    """Ray's grid / random search, restored consistently with the trials it created.

    Ray 2.6 saves an experiment in two files, the trials first, then the searcher. A driver killed
    between the two leaves a searcher that is behind its trials, which breaks a restored search in
    two ways, each mended here from the same experiment state that Ray restores the trials from:

    - the searcher has not counted the newest trial(s): it creates them again, with the same ids
      and configurations (its ids and random state are restored), and Ray runs both copies; the
      second copy's result crashes ASHA (``KeyError: '<trial id>'``), which has already forgotten
      a trial of that id. A trial created again under a restored id is dropped: the restored one
      runs in its place;
    - the searcher still counts as running a trial that has ended: it is never told it ended, so
      with ``max_concurrent`` the search waits for it forever. Ended trials are released.

    A restored trial that has not ended keeps its concurrency slot until it ends, also when the
    searcher had not counted it.
    """

    _restored_ids = frozenset()
    _ended_ids = frozenset()

    def restore_from_dir(self, dirpath):
        super().restore_from_dir(dirpath)
        self._restored_ids, self._ended_ids = _saved_trials(dirpath)
        self._live_trials -= self._ended_ids

    def next_trial(self):
        trial = super().next_trial()
        while trial is not None and trial.trial_id in self._restored_ids:
            # the restored trial of that id runs (or ran) in its place
            if trial.trial_id in self._ended_ids:
                self._live_trials.discard(trial.trial_id)
            trial = super().next_trial()
        return trial


class ResumableSearchGenerator(SearchGenerator):
    """Ray's wrapper of a model-based searcher (Optuna), restored consistently with its trials.

    The same two-file race as :class:`ResumableVariantGenerator`, with random trial ids: a restored
    trial the searcher never suggested (an orphan) would crash Optuna when it reports
    (``KeyError``), and the searcher, not having counted it, would add a trial beyond
    ``num_samples``. Here orphans run without being reported to the searcher and count towards
    ``num_samples``; the ``ConcurrencyLimiter`` releases the trials that had ended, and counts an
    orphan that has not ended as running until it ends.
    """

    _orphans = frozenset()

    def _limiter(self):
        """The ``ConcurrencyLimiter`` around the searcher, or None."""
        return self.searcher if isinstance(self.searcher, ConcurrencyLimiter) else None

    def restore_from_dir(self, dirpath):
        super().restore_from_dir(dirpath)
        restored, ended = _saved_trials(dirpath)
        limiter = self._limiter()
        searcher = limiter.searcher if limiter else self.searcher
        self._orphans = frozenset(restored - set(searcher._ot_trials))
        if limiter:
            limiter.live_trials = (limiter.live_trials | self._orphans) - ended
        self._counter = max(self._counter, len(restored))

    def on_trial_result(self, trial_id, result):
        if trial_id not in self._orphans:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id not in self._orphans:
            super().on_trial_complete(trial_id, result=result, error=error)
        elif self._limiter():
            self._limiter().live_trials.discard(trial_id)


class ResumableASHA(ASHAScheduler):
    """Ray's ASHA that rebuilds its rungs when a search is restored.

    Ray 2.6 saves the searcher with the experiment but not the scheduler: a restored search would
    start with empty rungs, so the trials run after the restore would be judged only against each
    other (the first one at each rung never stopped). Here every trial that had ended before the
    restore has its reported results replayed into its bracket, exactly as ASHA recorded them the
    first time; trials that were still running start again and are judged afresh.
    """

    def on_trial_add(self, trial_runner, trial):
        super().on_trial_add(trial_runner, trial)
        if trial.status not in (Trial.TERMINATED, Trial.ERROR) or not trial.local_path:
            return
        path = os.path.join(trial.local_path, EXPR_RESULT_FILE)
        if not os.path.isfile(path):
            return
        bracket = self._trial_info[trial.trial_id]
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                result = json.loads(line)
                if self._time_attr in result and self._metric in result:
                    value = self._metric_op * result[self._metric]
                    bracket.on_result(trial, result[self._time_attr], value)


def _scheduler(settings):
    if settings.scheduler == "fifo":
        return FIFOScheduler()
    return ResumableASHA(
        time_attr="epoch",
        max_t=settings.max_epochs,
        grace_period=settings.grace_period,
        reduction_factor=settings.reduction_factor,
    )


def search_model(settings, plan, output, gpus_per_trial):
    """Run (or resume) one model's Ray Tune search; returns its trial rows (list of dict).

    The experiment lives in ``<output>/ray/<Model>``; if Ray can restore it (an earlier run was
    interrupted), it is resumed: finished trials are kept, unfinished ones run again.
    """
    output = Path(output).resolve()
    storage = output / "ray"
    tables = output / "trials"
    tables.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(CHECKPOINT_PERIOD_ENV, "0")
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, setup=plan.setup),
        {"cpu": settings.cpus_per_trial, "gpu": gpus_per_trial},
    )
    experiment = storage / plan.model
    if tune.Tuner.can_restore(experiment):
        logger.warning("resuming the interrupted search of %s in %s", plan.model, experiment)
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True)
    else:
        seed = plan.setup.fixed["seed"]
        tuner = tune.Tuner(
            trainable,
            param_space=plan.space.tune_space(),
            tune_config=tune.TuneConfig(
                metric="best_valid_score",
                mode=plan.mode,
                num_samples=settings.num_samples,
                search_alg=_search_algorithm(settings, plan, seed),
                scheduler=_scheduler(settings),
            ),
            run_config=air.RunConfig(
                name=plan.model,
                storage_path=str(storage),
                callbacks=[TrialTable(plan, tables)],
                failure_config=air.FailureConfig(max_failures=0),
                log_to_file=True,
                verbose=settings.verbose,
            ),
        )
    tuner.fit()
    rows = report.read_rows_json(tables / f"{plan.model}.json")
    ended = [r for r in rows if r["status"] not in ("running", "pending")]
    if len(ended) < settings.num_samples:  # Ray returns from fit() when interrupted (Ctrl-C)
        raise TuneError(
            f"the search of {plan.model} stopped after {len(ended)} of {settings.num_samples} "
            "trials: run the same command again to resume it"
        )
    return rows


def start_ray(address=None):
    """Connect to the cluster at ``address``, or start a local Ray on this machine's CPUs and GPUs.

    The local Ray gets every CPU this process may use; Ray counts the GPUs itself (those of
    ``CUDA_VISIBLE_DEVICES`` when set), not through torch, whose count is fixed at its first CUDA
    call in this process, whatever ``CUDA_VISIBLE_DEVICES`` said then.

    Returns:
        bool: whether Ray was started here (and should be shut down by the caller).
    """
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        return True
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # "local": a new Ray of our own, even where `ray start` runs a cluster on this machine
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return True


def gpus_for_trials(settings):
    """The GPUs per trial: the setting, checked against the cluster, or 1/0 with/without GPUs."""
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 0)
    if settings.cpus_per_trial > cpus:
        raise TuneError(
            f"--cpus-per-trial {settings.cpus_per_trial} but the Ray cluster has {cpus:g} CPUs: "
            "lower --cpus-per-trial"
        )
    if settings.gpus_per_trial is None:
        return 1 if gpus >= 1 else 0
    if settings.gpus_per_trial > gpus:
        raise TuneError(
            f"--gpus-per-trial {settings.gpus_per_trial} but the Ray cluster has {gpus:g} GPUs: "
            "use --gpus-per-trial 0 to train on CPUs, or connect to a cluster with GPUs (--address)"
        )
    return settings.gpus_per_trial


def _fingerprint(settings, plans):
    """What defines the search (JSON-ready dict); resources and the cluster address may change."""
    value = {
        "dataset": settings.dataset,
        "models": settings.models,
        "spaces": {p.model: p.space.describe() for p in plans},
        "fixed": {p.model: p.setup.fixed for p in plans},
        "config_files": list(plans[0].setup.config_files),
        **{k: getattr(settings, k) for k in (
            "num_samples", "max_epochs", "scheduler", "grace_period", "reduction_factor", "search")},
    }
    return json.loads(json.dumps(value))


class _State:
    """``<output>/tune.json``: the settings of the search and each model's progress."""

    def __init__(self, output, fingerprint):
        self.path = Path(output) / STATE_FILE
        self.progress = {}
        if self.path.is_file():
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            differing = sorted(
                k for k in set(saved["settings"]) | set(fingerprint)
                if saved["settings"].get(k) != fingerprint.get(k)
            )
            if differing:
                raise TuneError(
                    f"{output} holds a search with other settings ({', '.join(differing)} differ): "
                    "re-run it with its own settings to resume it, or choose a new --output"
                )
            self.progress = saved["progress"]
        self.fingerprint = fingerprint

    def model(self, name):
        return self.progress.setdefault(name, {})

    def save(self):
        payload = {"settings": self.fingerprint, "progress": self.progress}
        replace_atomically(self.path, lambda f: f.write(json.dumps(payload, indent=2) + "\n"))


def write_best_config(path, plan, best, dataset):
    """Write the best configuration of ``plan.model`` as a config YAML; returns it (dict)."""
    config = {**plan.setup.fixed, **best["config"]}
    header = (
        f"# Best configuration of {plan.model} on {dataset}: trial {best['trial']} "
        f"({best['trial_id']}), validation {plan.metric} = {best['best_valid_score']:.6f}.\n"
        "# Selected on validation only. Use it with\n"
        f"#   run_recbole --model={plan.model} --dataset={dataset} --config_files='"
        f"{' '.join(plan.setup.config_files + (str(path),))}'\n"
    )
    text = header + yaml.safe_dump(config, sort_keys=False)
    replace_atomically(path, lambda f: f.write(text))
    return config


def _best_baseline(settings, state, plans):
    """The baseline with the best validation score of its test run (str or None)."""
    mode = plans[0].mode
    scores = {
        m: state.model(m)["best_valid_score"]
        for m in settings.baselines
        if state.model(m).get("record")
    }
    if not scores:
        return None
    return (max if mode == "max" else min)(scores, key=scores.get)


def run_tune(settings):
    """Search every model, test each best configuration once and write the report.

    Args:
        settings (TuneSettings): what to search (see its attributes).

    Returns:
        dict: ``output``, ``report`` (path of report.md), ``summary`` (its text), ``comparison``
        (Markdown table, or None for a single model) and ``models`` ({model: {"rows", "best",
        "best_config", "record", "test"}}, ``test``: the test value of the validation metric).

    Raises:
        TuneError: settings that cannot run, or no trial of the model under test succeeded (the
            report is written first).
    """
    settings.check()
    plans = [plan_model(settings, model) for model in settings.models]
    metrics = {p.metric for p in plans}
    if len(metrics) > 1:
        raise TuneError(
            f"the models are validated on different metrics ({', '.join(sorted(metrics))}); set "
            "one valid_metric for all in a --config-files YAML"
        )
    output = Path(settings.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    state = _State(output, _fingerprint(settings, plans))
    state.save()
    pending = [p for p in plans if not state.model(p.model).get("search_complete")]
    if pending:
        started = start_ray(settings.address)
        try:
            gpus = gpus_for_trials(settings)
            for plan in pending:
                search_model(settings, plan, output, gpus)
                state.model(plan.model)["search_complete"] = True
                state.save()
        finally:
            if started:
                ray.shutdown()

    models = {}
    for plan in plans:
        progress = state.model(plan.model)
        rows = report.read_rows_json(output / "trials" / f"{plan.model}.json")
        best = report.best_row(rows, plan.mode)
        info = {"rows": rows, "best": best, "best_config": None, "record": None, "test": None}
        models[plan.model] = info
        if best is None:
            logger.warning("no trial of %s succeeded: see %s", plan.model, output / "trials")
            continue
        best_path = output / "best" / f"{plan.model}.yaml"
        best_path.parent.mkdir(exist_ok=True)
        best_config = write_best_config(best_path, plan, best, settings.dataset)
        info["best_config"] = str(best_path)
        if not progress.get("record"):
            result = run(
                plan.model,
                settings.dataset,
                config_file_list=list(plan.setup.config_files),
                config_dict={
                    **best_config,
                    "save_per_user": True,
                    "checkpoint_dir": str(output / "final" / plan.model),
                },
            )
            progress.update(record=result["record"], best_valid_score=result["best_valid_score"])
            state.save()
        info["record"] = progress["record"]

    summary = _write_report(settings, state, plans, models, output)
    if models[settings.model]["record"] is None:
        raise TuneError(
            f"no trial of {settings.model} succeeded, so it has no test result: see the errors in "
            f"{output / 'trials' / (settings.model + '.csv')}"
        )
    return summary


def _write_report(settings, state, plans, models, output):
    """Write trials.csv, best_so_far.png, the comparison and report.md; returns run_tune's dict."""
    metric, mode = plans[0].metric, plans[0].mode
    all_rows = [row for info in models.values() for row in info["rows"]]
    report.write_rows_csv(output / "trials.csv", all_rows, metric)
    report.plot_best_so_far(
        {m: info["rows"] for m, info in models.items()}, metric, mode, output / "best_so_far.png",
        f"{settings.dataset}: {settings.num_samples} trials x {settings.max_epochs} epochs per model",
    )
    records = [info["record"] for info in models.values() if info["record"]]
    for info in models.values():
        if info["record"]:
            test_result = json.loads(Path(info["record"]).read_text(encoding="utf-8"))["test_result"]
            info["test"] = test_result.get(metric)
    comparison = None
    if len(records) >= 2:  # a single model has nothing to be compared with
        from recbole_mm.compare import compare_files

        compared = compare_files(
            records, output, stem="comparison", test="ttest", alpha=0.05,
            reference=_best_baseline(settings, state, plans),
        )
        comparison = compared.markdown
    title = f"Tuning on {settings.dataset}: {', '.join(settings.models)}"
    text = report.summary_markdown(title, models, metric, comparison)
    path = output / "report.md"
    replace_atomically(path, lambda f: f.write(text))
    return {"output": str(output), "report": str(path), "summary": text,
            "comparison": comparison, "models": models}
