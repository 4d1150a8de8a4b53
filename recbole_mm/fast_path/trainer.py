"""``FastTrainer``: RecBole's ``Trainer`` with device-resident training batches and evaluation.

Switched on with ``fast_path: True`` (see ``properties/overall.yaml``). Where stock RecBole spends
an epoch, for every batch: slicing the dataset in Python, sampling negatives on the CPU with a
per-row Python membership loop, joining features and copying the batch to the device, the fast
path keeps the training pairs on the model's device and builds each batch from tensors there.
RecBole's ``fit`` still runs the epochs (early stopping, checkpoints, logging, ``eval_step``,
``clip_grad_norm``, AMP, the optimizer from ``learner`` / ``learning_rate`` / ``weight_decay``):
only ``_train_epoch``'s data source and ``evaluate`` are replaced.
"""

import inspect
import itertools
import logging
import math
import weakref

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader, TrainDataLoader
from recbole.data.interaction import Interaction
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.trainer import Trainer
from recbole.utils import EvaluatorType, InputType

from recbole_mm.compat.checkpoint import load as load_checkpoint
from recbole_mm.fast_path.evaluator import FullSortEvaluator, unsupported_metrics
from recbole_mm.fast_path.propagation import accelerate_propagation

RECBOLE_GENERAL = "recbole.model.general_recommender."

# RecBole 1.2.1 general models trained by the plain Trainer on a TrainDataLoader whose
# calculate_loss reads only USER_ID, ITEM_ID and NEG_ITEM_ID (PAIRWISE) or USER_ID, ITEM_ID and
# LABEL (POINTWISE) from the batch: read from each calculate_loss, and checked by recording the
# fields it reads from a real RecBole batch. SimpleX also relies on the batch layout (the k
# negatives of a positive are k blocks apart), which the fast path reproduces. NCEPLRec reads
# nothing (it is solved in closed form at construction).
# Not here, and why: NCL, RecVAE and RaCT have their own RecBole trainers (the fast path is not used
# at all); MultiVAE, MultiDAE, MacridVAE, CDAE, ENMF, DiffRec and LDiffRec train on RecBole's
# UserDataLoader (batches of user ids, no sampling: already cheap), so FastTrainer trains them with
# RecBole's loop and evaluates them on the fast path; traditional models (Pop, ItemKNN, EASE, ...)
# keep RecBole's TraditionalTrainer.
RECBOLE_MODELS = frozenset(
    ["BPR", "ConvNCF", "DGCF", "GCMC", "LINE", "LightGCN", "NGCF", "SGL", "SimpleX", "SpectralCF"]
    + ["DMF", "FISM", "NAIS", "NCEPLRec", "NeuMF", "NNCF"]  # POINTWISE
)
# config values a listed model needs for its loss to read only those fields
RECBOLE_MODEL_CONDITIONS = {"DMF": ("inter_matrix_type", "01")}  # 'rating' reads the RATING field

# optimizer_impl: "default" keeps the optimizer RecBole builds (torch's choice: a loop over the
# parameters on the CPU, one multi-tensor kernel per step on CUDA); the others rebuild it with
# the same learner and hyperparameters and that torch implementation
OPTIMIZER_IMPLS = ("default", "foreach", "fused")

# sampled rows drawn at once: bounds the negatives held on the device (32 MiB of int64 ids) while
# keeping the number of rejection rounds (each a device sync) per epoch small
_ROWS_PER_DRAW = 1 << 22


class FastPathError(ValueError):
    """The fast path cannot run with this configuration; the message says what to change."""


def training_fallback_reason(config, model_class, train_data):
    """Why a model must be trained by RecBole's own loop (str), or None if the fast path applies.

    A model qualifies if it is one of :data:`RECBOLE_MODELS` or its class sets
    ``fast_path_compatible = True`` (a plugin's promise that ``calculate_loss`` reads only
    USER_ID, ITEM_ID and NEG_ITEM_ID or LABEL, laid out as RecBole's ``TrainDataLoader`` lays them).

    Args:
        config (Config): the run's config.
        model_class (type): the model's class.
        train_data (AbstractDataLoader): the run's training loader.
    """
    name = model_class.__name__
    from_recbole = model_class.__module__.startswith(RECBOLE_GENERAL)
    compatible = getattr(model_class, "fast_path_compatible", None)
    if compatible is None:
        compatible = from_recbole and name in RECBOLE_MODELS
    if not compatible:
        return (
            f"{name}.calculate_loss is not known to read only the user, item and negative-item/"
            "label fields (a plugin model that does can declare fast_path_compatible = True)"
        )
    key, value = RECBOLE_MODEL_CONDITIONS.get(name, (None, None))
    if key is not None and from_recbole and config[key] != value:
        return f"{name} with {key}={config[key]!r} reads other fields (needs {key}={value!r})"
    if type(train_data) is not TrainDataLoader:
        loader = type(train_data).__name__
        return f"its training data comes from {loader}, not RecBole's TrainDataLoader"
    if config["MODEL_INPUT_TYPE"] not in (InputType.PAIRWISE, InputType.POINTWISE):
        return f"input type {config['MODEL_INPUT_TYPE'].name} is neither PAIRWISE nor POINTWISE"
    args = config["train_neg_sample_args"]
    if args["distribution"] != "uniform" or args.get("dynamic"):
        return (
            f"train_neg_sample_args {dict(args)}: only uniform, non-dynamic negative sampling "
            "runs on the device"
        )
    if config["transform"]:
        return f"batch transform {config['transform']!r} is applied by RecBole's data loader"
    return None


def epoch_seed(seed, epoch):
    """A 63-bit seed (int) for one epoch's shuffle and negatives, from the run's seed and epoch."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]) >> 1


def _used_id_keys(used_ids, n_items):
    """Sorted int64 keys ``user * n_items + item`` ``[P]`` of a RecBole sampler's ``used_ids``
    (numpy array ``[n_users]`` of item-id sets)."""
    lengths = np.fromiter(map(len, used_ids), dtype=np.int64, count=len(used_ids))
    items = np.fromiter(itertools.chain.from_iterable(used_ids), dtype=np.int64, count=lengths.sum())
    users = np.repeat(np.arange(len(used_ids), dtype=np.int64), lengths)
    return torch.sort(torch.from_numpy(users * n_items + items))[0]


class DeviceTrainData:
    """The training interactions of one ``TrainDataLoader`` on ``device``, batched per epoch.

    Holds the user ids ``[N]`` and item ids ``[N]`` of the training rows and, for negative
    sampling, the sorted keys ``user * n_items + item`` of the pairs a negative must avoid ``[P]``:
    those RecBole's training sampler rejects (its ``used_ids``: the distinct training pairs, plus
    any item withheld from every user, e.g. the cold items of
    :mod:`recbole_mm.evaluation.cold_start`), or the distinct training pairs when the loader has no
    sampler. An item is excluded for a user iff its key is found by ``searchsorted``.

    A batch holds ``train_batch_size // times`` positives (``times`` = ``sample_num`` for PAIRWISE,
    ``1 + sample_num`` for POINTWISE, as RecBole's loader) and is laid out as RecBole lays it out.

    Args:
        config (Config): ``train_neg_sample_args``, ``train_batch_size``, ``MODEL_INPUT_TYPE``,
            ``seed``, field names.
        train_data (TrainDataLoader): the run's training loader (its dataset and ``shuffle``).
        device (torch.device): the model's device.
    """

    def __init__(self, config, train_data, device):
        dataset = train_data._dataset
        self.device = torch.device(device)
        self.uid_field, self.iid_field = dataset.uid_field, dataset.iid_field
        self.neg_field = config["NEG_PREFIX"] + self.iid_field
        self.label_field = config["LABEL_FIELD"]
        self.users = dataset.inter_feat[self.uid_field].to(self.device)
        self.items = dataset.inter_feat[self.iid_field].to(self.device)
        self.n_items = dataset.item_num
        sampler = getattr(train_data, "_sampler", None)
        if sampler is None:
            self.positive_keys = torch.unique(self.users * self.n_items + self.items)  # sorted
        else:
            self.positive_keys = _used_id_keys(sampler.used_ids, self.n_items).to(self.device)
        positives_per_user = torch.bincount(
            torch.div(self.positive_keys, self.n_items, rounding_mode="floor")
        )
        if len(positives_per_user) and int(positives_per_user.max()) >= self.n_items - 1:
            raise FastPathError(
                "a user has interacted with every item, so no negative can be sampled for them; "
                "filter such users (e.g. user_inter_num_interval)"
            )
        self.sample_num = config["train_neg_sample_args"]["sample_num"]
        self.pointwise = config["MODEL_INPUT_TYPE"] == InputType.POINTWISE
        times = 1 + self.sample_num if self.pointwise else self.sample_num
        self.batch_positives = max(config["train_batch_size"] // times, 1)
        self.shuffle = train_data.shuffle
        self.seed = config["seed"]

    def __len__(self):
        """Batches per epoch (int)."""
        return math.ceil(len(self.users) / self.batch_positives)

    def is_positive(self, users, items):
        """Whether each item is one of its user's training positives: ``[M]`` x2 -> bool ``[M]``."""
        keys = users * self.n_items + items
        found = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[found] == keys

    def sample_negatives(self, users, generator):
        """``sample_num`` negatives per user: uniform over items ``1..n_items-1`` but its positives.

        Rejection sampling, vectorised: draw all, then redraw only the rejected ones until none is
        left; as RecBole's sampler, this is the uniform distribution over the allowed items.

        Args:
            users (torch.Tensor): int64 ``[B]``.
            generator (torch.Generator): on ``device``.

        Returns:
            torch.Tensor: int64 ``[sample_num, B]``; row ``j``: the j-th negative of every user.
        """
        users = users.repeat(self.sample_num)
        negatives = torch.randint(
            1, self.n_items, users.shape, generator=generator, device=self.device
        )
        pending = torch.nonzero(self.is_positive(users, negatives)).squeeze(1)
        while len(pending):
            redrawn = torch.randint(
                1, self.n_items, pending.shape, generator=generator, device=self.device
            )
            negatives[pending] = redrawn
            pending = pending[self.is_positive(users[pending], redrawn)]
        return negatives.view(self.sample_num, -1)

    def batch(self, users, items, negatives):
        """A RecBole ``Interaction`` from positives ``[B]`` x2 and negatives ``[sample_num, B]``.

        PAIRWISE: ``sample_num * B`` rows; row ``j * B + b`` is positive ``b`` with its j-th
        negative in NEG_ITEM_ID. POINTWISE: ``(1 + sample_num) * B`` rows, the ``B`` positives
        (LABEL 1), then block ``j`` holding the j-th negative of every positive (LABEL 0).
        """
        times = self.sample_num + 1 if self.pointwise else self.sample_num
        fields = {self.uid_field: users.repeat(times)}
        if self.pointwise:
            fields[self.iid_field] = torch.cat([items, negatives.reshape(-1)])
            label = torch.zeros(len(fields[self.iid_field]), device=self.device)
            label[: len(items)] = 1.0
            fields[self.label_field] = label
        else:
            fields[self.iid_field] = items.repeat(times)
            fields[self.neg_field] = negatives.reshape(-1)
        return Interaction(fields)

    def epoch(self, epoch_idx):
        """The batches of one epoch: iterable, with ``len`` (RecBole's loop and tqdm need both)."""
        return _Epoch(self, epoch_idx)

    def iter_epoch(self, epoch_idx):
        """Yield the batches of epoch ``epoch_idx``: shuffled (if the loader shuffles) and sampled
        with a generator seeded from (seed, epoch), so a run and a resumed run draw the same."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.seed, epoch_idx))
        n = len(self.users)
        if self.shuffle:
            order = torch.randperm(n, generator=generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        draw = (
            max(_ROWS_PER_DRAW // (self.sample_num * self.batch_positives), 1)
            * self.batch_positives
        )
        for chunk_start in range(0, n, draw):
            rows = order[chunk_start : chunk_start + draw]
            users, items = self.users[rows], self.items[rows]
            negatives = self.sample_negatives(users, generator)
            for start in range(0, len(rows), self.batch_positives):
                end = start + self.batch_positives
                yield self.batch(users[start:end], items[start:end], negatives[:, start:end])


class _Epoch:
    """One epoch of :class:`DeviceTrainData` batches, with a length; each pass draws the same."""

    def __init__(self, data, epoch_idx):
        self.data, self.epoch_idx = data, epoch_idx

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        return self.data.iter_epoch(self.epoch_idx)


class FastTrainer(Trainer):
    """RecBole's ``Trainer`` with training batches built on the model's device and full-sort
    evaluation on the device (:class:`~recbole_mm.fast_path.evaluator.FullSortEvaluator`).

    Training: for the models :func:`training_fallback_reason` accepts, each epoch's batches come
    from :class:`DeviceTrainData` (same batch sizes, layout and negative distribution as RecBole's
    ``TrainDataLoader``; a different random stream, so curves match RecBole's within training
    noise). Other models are trained by RecBole's loop, with a warning saying why. RecBole's
    ``_train_epoch`` runs the optimisation steps either way.

    Evaluation: full-sort evaluation with the metrics of
    :data:`~recbole_mm.fast_path.evaluator.SUPPORTED_METRICS` gives exactly RecBole's numbers;
    sampled evaluation (``mode: uni100`` ...) or other metrics fall back to RecBole's ``evaluate``
    with a warning.

    RecBole's LightGCN also gets recbole_mm's propagation layer
    (:func:`~recbole_mm.fast_path.propagation.accelerate_propagation`): same parameters and scores,
    a backward that reuses the adjacency.

    Optimizer: ``optimizer_impl`` picks torch's implementation of RecBole's ``learner``
    (:meth:`_build_optimizer`). The default, ``foreach``, gives bit-for-bit the parameters of
    torch's per-parameter loop (what RecBole's optimizer runs on the CPU, where Adam's step over
    large embedding tables is most of a BPR epoch) in about half the time; ``fused`` is faster
    still but rounds differently (last-bit differences, so runs are not bit-identical to RecBole's).

    Models without ``full_sort_predict`` (NeuMF, ...) are scored by ``predict`` over every
    (user, item) pair; RecBole feeds it ``eval_batch_size`` rows at a time, the fast path at most
    ``predict_batch_size``, and evaluates such models in batches of that many scores (a large
    ``eval_batch_size`` packs many users per batch, but repeating their features over hundreds of
    thousands of rows for one ``predict`` call is slower on the CPU than several small calls).

    Several GPUs: RecBole's DDP mode (``nproc > 1``, i.e. ``single_spec`` false) is not supported:
    the device-resident batches would have to be sharded per rank and the metrics reduced across
    ranks. Constructing a FastTrainer there raises :class:`FastPathError`; run one process per GPU
    (e.g. one trial per GPU) instead. A single process uses the one device in ``config["device"]``.
    """

    def __init__(self, config, model):
        if not config["single_spec"]:
            raise FastPathError(
                "fast_path does not support RecBole's distributed mode "
                f"(nproc={config['nproc']}, world_size={config['world_size']}): "
                "set fast_path: False, or run one process per GPU"
            )
        super().__init__(config, model)
        predict_batch_size = config["predict_batch_size"]
        if predict_batch_size:  # rows per predict() call (RecBole: eval_batch_size)
            if not isinstance(predict_batch_size, int) or predict_batch_size < 0:
                raise FastPathError(
                    f"predict_batch_size must be a positive integer (or 0 / None: RecBole's "
                    f"eval_batch_size), got {predict_batch_size!r}"
                )
            self.test_batch_size = min(self.test_batch_size, predict_batch_size)
        if accelerate_propagation(model):
            self.logger.info("fast_path: LightGCN propagates with recbole_mm's propagation layer")
        self._device_train = None  # (train loader, DeviceTrainData or None, fallback reason)
        self._evaluators = weakref.WeakKeyDictionary()  # eval loader -> FullSortEvaluator
        self._warned = set()

    def _build_optimizer(self, **kwargs):
        """RecBole's optimizer, rebuilt with torch's ``optimizer_impl`` implementation when that
        optimizer has one (``foreach``: Adam, AdamW, SGD, Adagrad, RMSprop, ...; ``fused``: Adam,
        AdamW, SGD, Adagrad); otherwise RecBole's (logged)."""
        return self._with_implementation(super()._build_optimizer(**kwargs))[0]

    def resume_checkpoint(self, resume_file):
        """RecBole's resume, keeping ``optimizer_impl``: loading the saved optimizer state brings
        back the implementation it was saved with, so the state is moved into an optimizer of
        the configured implementation (which also places fused ``step`` counters correctly)."""
        super().resume_checkpoint(resume_file)
        state = self.optimizer.state_dict()
        self.optimizer, flags = self._with_implementation(self.optimizer)
        if flags is not None:
            for group in state["param_groups"]:
                group.update(flags)
            self.optimizer.load_state_dict(state)

    def _with_implementation(self, optimizer):
        """(optimizer, flags): ``optimizer`` rebuilt with the same parameter groups and
        hyperparameters and the ``foreach`` / ``fused`` flags of ``optimizer_impl``, or
        ``(optimizer, None)`` where it stays as it is."""
        impl = self.config["optimizer_impl"] or "default"
        if impl not in OPTIMIZER_IMPLS:
            raise FastPathError(
                f"optimizer_impl must be one of {', '.join(OPTIMIZER_IMPLS)}, got '{impl}'"
            )
        name = type(optimizer).__name__
        if impl == "default":
            return optimizer, None
        if impl not in optimizer.defaults:
            self.logger.info(f"fast_path: {name} has no '{impl}' implementation; torch's default")
            return optimizer, None
        flags = {key: None for key in OPTIMIZER_IMPLS[1:] if key in optimizer.defaults}
        flags[impl] = True
        # defaults may hold keys the constructor does not take (AdamW: decoupled_weight_decay);
        # the groups keep them, and their own per-group hyperparameters
        accepted = inspect.signature(type(optimizer)).parameters
        defaults = {key: value for key, value in optimizer.defaults.items() if key in accepted}
        groups = [{**group, **flags} for group in optimizer.param_groups]
        try:
            return type(optimizer)(groups, **{**defaults, **flags}), flags
        except (RuntimeError, ValueError) as error:  # a combination torch refuses
            self.logger.warning(
                f"fast_path: {name}({impl}=True) refused ({error}); using torch's default"
            )
            return optimizer, None

    def _warn_once(self, message):
        if message not in self._warned:
            self._warned.add(message)
            self.logger.warning(message)

    def _train_source(self, train_data):
        """(DeviceTrainData or None, reason) for ``train_data``, built once per loader."""
        if self._device_train is None or self._device_train[0] is not train_data:
            reason = training_fallback_reason(self.config, type(self.model), train_data)
            data = DeviceTrainData(self.config, train_data, self.device) if reason is None else None
            self._device_train = (train_data, data, reason)
        return self._device_train[1], self._device_train[2]

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch of RecBole's training loop, over device-built batches when the model allows."""
        data, reason = self._train_source(train_data)
        if data is None:
            self._warn_once(
                f"fast_path: training {self.config['model']} with RecBole's loop: {reason}"
            )
            return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        return super()._train_epoch(data.epoch(epoch_idx), epoch_idx, loss_func, show_progress)

    def _evaluation_fallback_reason(self, eval_data):
        if not isinstance(eval_data, FullSortEvalDataLoader) or eval_data.is_sequential:
            return "only full-sort evaluation of general models runs on the fast path"
        if self.config["eval_type"] != EvaluatorType.RANKING:
            return "value metrics (AUC, LogLoss, ...) are computed by RecBole's evaluator"
        unsupported = unsupported_metrics(self.config["metrics"])
        if unsupported:
            return f"metrics {unsupported} are computed by RecBole's evaluator"
        return None

    def _evaluator(self, eval_data):
        if eval_data not in self._evaluators:
            scores_per_batch = self.config["eval_batch_size"]
            if type(self.model).full_sort_predict is AbstractRecommender.full_sort_predict:
                # scored by predict() over (user, item) rows: batches of at most one call's rows
                scores_per_batch = min(scores_per_batch, self.test_batch_size)
            self._evaluators[eval_data] = FullSortEvaluator(
                self.config, eval_data, self.device, scores_per_batch=scores_per_batch
            )
        return self._evaluators[eval_data]

    def _score_users(self, users):
        """Scores ``[B, n_items]`` of the users in Interaction ``users``: RecBole's own scoring
        (``full_sort_predict``, or ``predict`` over every item when the model has none)."""
        return self._full_sort_batch_eval((users, None, None, None))[1]

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's ``Trainer.evaluate``, computed on the device for full-sort evaluation.

        Returns:
            OrderedDict: metric -> value, equal to what RecBole's ``evaluate`` returns.
        """
        if not eval_data:
            return None
        reason = self._evaluation_fallback_reason(eval_data)
        if reason is not None:
            self._warn_once(f"fast_path: evaluating with RecBole's evaluator: {reason}")
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if load_best_model:
            checkpoint_file = model_file or self.saved_model_file
            checkpoint = load_checkpoint(
                checkpoint_file, self.device, known_classes=[type(self.model)]
            )
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        self.model.eval()
        if self.item_tensor is None:
            self.item_tensor = eval_data._dataset.get_item_feature().to(self.device)
        self.tot_item_num = eval_data._dataset.item_num
        result = self._evaluator(eval_data).evaluate(
            self._score_users,
            show_progress=show_progress,
            collected=self.eval_collector.data_struct,
        )
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result


def choose_trainer(default_trainer):
    """The trainer class for a run with ``fast_path: True`` and no ``trainer`` configured.

    FastTrainer replaces RecBole's plain ``Trainer`` only: a model with its own trainer (NCL's,
    TraditionalTrainer, a plugin's ``<Model>Trainer``) keeps it, with a warning.
    """
    if default_trainer is Trainer:
        return FastTrainer
    logging.getLogger().warning(
        f"fast_path: keeping {default_trainer.__name__}, this model's own trainer; the fast path "
        "replaces only RecBole's plain Trainer"
    )
    return default_trainer
