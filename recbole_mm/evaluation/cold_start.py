"""Item cold-start evaluation: items held out of training and validation, scored from content alone.

Switched on with ``cold_start_items: <fraction>`` (keys documented in ``properties/overall.yaml``)
for a model that can score an item from its features alone (the models built on
:class:`~recbole_mm.model.MultimodalRecommender` that declare ``content_only_cold_items = True``:
LFMMLGCN, EFMMLGCN, MMLGCN). The protocol:

1. **Cold items.** ``round(fraction * m)`` items (at least one, fewer than ``m``), where ``m`` is the
   number of items with at least one interaction, are drawn uniformly at random with the seed
   ``cold_start_seed`` (default: ``seed``), so the same config always holds out the same items.
2. **Split.** RecBole splits the interactions as configured (``eval_args`` or
   ``benchmark_filename``); then every interaction of a cold item, whichever part it fell in, moves
   to the *cold test set*. The warm training, validation and test sets are RecBole's parts minus
   those rows: a cold item has no training and no validation interaction.
3. **No training signal.** Cold items are added to every user's "used" items in RecBole's
   samplers: they are never drawn as training negatives (by RecBole's sampler or the fast path,
   which rejects what that sampler rejects), so no parameter of a cold item is ever trained, and the
   training graph has no edge to them.
4. **Warm evaluation** is unchanged except that cold items are not candidates (they are masked like
   history): early stopping and model selection use the warm validation set, and ``test_result`` is
   the warm test set, ranking warm items only.
5. **Content-only scoring.** The model receives the cold items as ``cold_item_mask`` and must not
   let any ID-based item parameter enter their scores: LF-MMLGCN fuses only the projected
   modalities of a cold item (its collaborative input is absent, as a missing modality is absent),
   EF-MMLGCN concatenates zeros in place of its collaborative embedding, MMLGCN leaves the
   collaborative graph out of its item fusion.
6. **Cold test**, once, after the warm test and with the same (validation-selected) model: users
   with at least one warm training interaction (a user without one would be a cold user too; their
   rows are dropped and counted in the log); positives: their cold-item interactions; candidates:
   the cold items only (``cold_start_candidates: cold``, the usual strict item cold-start ranking),
   or every item except the user's warm training, validation and test items (``all``); metrics:
   ``metrics`` at ``topk``, full-sort, computed by :class:`~recbole_mm.fast_path.FullSortEvaluator`
   (RecBole's formulas). The result is reported as ``cold_test_result`` beside ``test_result``.
"""

import logging
from dataclasses import dataclass

import numpy as np
import torch
from recbole.data import data_preparation as recbole_data_preparation
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.interaction import cat_interactions
from recbole.data.utils import create_samplers, get_dataloader
from recbole.sampler import Sampler

from recbole_mm.fast_path.evaluator import FullSortEvaluator, unsupported_metrics
from recbole_mm.model import MultimodalRecommender

CANDIDATES = ("cold", "all")


class ColdStartError(ValueError):
    """The cold-start protocol cannot run with this configuration; the message says what to change."""


@dataclass
class ColdStart:
    """The cold items of one run and their test set.

    Attributes:
        items (numpy.ndarray): int64 ``[n_cold]``, sorted internal ids of the cold items.
        candidates (str): ``cold`` or ``all`` (see the module docstring).
        data (FullSortEvalDataLoader or None): the cold test set (set by :func:`data_preparation`).
    """

    items: np.ndarray
    candidates: str = "cold"
    data: FullSortEvalDataLoader = None

    def mask(self, n_items):
        """bool ``[n_items]``: True for the cold items."""
        mask = torch.zeros(n_items, dtype=torch.bool)
        mask[torch.from_numpy(self.items)] = True
        return mask


def check_config(config):
    """Raise :class:`ColdStartError` if ``cold_start_*`` cannot run with ``config``; else return
    (fraction, seed, candidates)."""
    fraction = config["cold_start_items"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ColdStartError(
            f"cold_start_items={fraction!r}: give the fraction of items to hold out, a number "
            "strictly between 0 and 1 (e.g. 0.2)"
        )
    candidates = config["cold_start_candidates"] or "cold"
    if candidates not in CANDIDATES:
        raise ColdStartError(
            f"cold_start_candidates={candidates!r}: choose 'cold' (rank the cold items only) or "
            "'all' (rank every item the user has not interacted with)"
        )
    model = config.model_class
    if not (isinstance(model, type) and issubclass(model, MultimodalRecommender)):
        raise ColdStartError(
            f"cold_start_items needs a model that scores items from their content, and "
            f"{config['model']} is not a multimodal model (built on "
            "recbole_mm.model.MultimodalRecommender): use e.g. LFMMLGCN, EFMMLGCN or MMLGCN with "
            "'modalities', or unset cold_start_items"
        )
    if not getattr(model, "content_only_cold_items", False):
        raise ColdStartError(
            f"{config['model']} does not declare that it scores the items of cold_item_mask from "
            "their features alone: implement that in the model and set the class attribute "
            "content_only_cold_items = True, or unset cold_start_items"
        )
    unsupported = unsupported_metrics(config["metrics"])
    if unsupported:
        raise ColdStartError(
            f"the cold test set is ranked by recbole_mm's full-sort evaluator, which does not compute "
            f"{unsupported}: remove them from 'metrics' or unset cold_start_items"
        )
    if config["save_dataloaders"] or config["dataloaders_save_path"]:
        raise ColdStartError(
            "cold_start_items builds its own split: unset save_dataloaders and dataloaders_save_path"
        )
    seed = config["cold_start_seed"]
    return fraction, config["seed"] if seed is None else seed, candidates


def choose_cold_items(item_ids, fraction, seed):
    """Draw the cold items: a seeded uniform sample of the items that occur in ``item_ids``.

    Args:
        item_ids (numpy.ndarray): int ``[N]``, the item of every interaction.
        fraction (float): in (0, 1); ``round(fraction * distinct items)`` are drawn.
        seed (int): seed of the draw.

    Returns:
        numpy.ndarray: int64 ``[n_cold]``, sorted.

    Raises:
        ColdStartError: when the fraction rounds to no item, or to every item.
    """
    items = np.unique(item_ids).astype(np.int64)
    n_cold = round(fraction * len(items))
    if not 0 < n_cold < len(items):
        raise ColdStartError(
            f"cold_start_items={fraction} holds out {n_cold} of the {len(items)} items with "
            "interactions: choose a fraction that leaves at least one cold and one warm item"
        )
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(items, size=n_cold, replace=False))


def _rows(dataset, keep):
    """A copy of ``dataset`` holding the interactions where bool ``keep`` [N] is True."""
    return dataset.copy(dataset.inter_feat[np.flatnonzero(keep)])


def data_preparation(config, dataset):
    """RecBole's ``data_preparation``, with the cold-start split when ``cold_start_items`` is set.

    Without ``cold_start_items`` this is RecBole's function. With it, the warm loaders follow
    the protocol of the module docstring, and ``dataset.cold_start`` (also seen by the split
    datasets, hence by the model built on the training one) is a :class:`ColdStart` whose ``data``
    is the cold test loader.

    Returns:
        tuple: (train_data, valid_data, test_data), the warm loaders.
    """
    if not config["cold_start_items"]:
        return recbole_data_preparation(config, dataset)
    fraction, seed, candidates = check_config(config)
    logger = logging.getLogger()
    built = dataset.build()
    iid, uid = dataset.iid_field, dataset.uid_field
    cold_items = choose_cold_items(dataset.inter_feat[iid].numpy(), fraction, seed)
    cold_start = ColdStart(items=cold_items, candidates=candidates)

    is_cold = [np.isin(part.inter_feat[iid].numpy(), cold_items) for part in built]
    warm = [_rows(part, ~cold) for part, cold in zip(built, is_cold)]
    cold_rows = cat_interactions(
        [part.inter_feat[np.flatnonzero(cold)] for part, cold in zip(built, is_cold)]
    )
    trained_users = np.unique(warm[0].inter_feat[uid].numpy())
    known_user = np.isin(cold_rows[uid].numpy(), trained_users)
    if not known_user.any():
        raise ColdStartError(
            "no interaction of a cold item comes from a user with training interactions: "
            "raise cold_start_items or check the split"
        )
    cold_test = dataset.copy(cold_rows[np.flatnonzero(known_user)])
    for part in [dataset, cold_test] + warm:  # the model reads it from the training part
        part.cold_start = cold_start
    logger.info(
        f"cold start: {len(cold_items)} cold items (seed {seed}), {len(cold_test)} cold test "
        f"interactions; {int((~known_user).sum())} dropped (users without training interactions); "
        f"warm train/valid/test {[len(part) for part in warm]}"
    )

    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, warm)
    # the cold test's history: the user's warm train, valid and test items (used with 'all')
    history = test_sampler or Sampler(["train", "valid", "test"], warm).set_phase("test")
    cold_start.data = FullSortEvalDataLoader(config, cold_test, history, shuffle=False)
    _withhold(
        [s.used_ids for s in (train_sampler, valid_sampler, test_sampler) if s is not None],
        cold_items,
        dataset.item_num,
    )
    train_data = get_dataloader(config, "train")(
        config, warm[0], train_sampler, shuffle=config["shuffle"]
    )
    valid_data = get_dataloader(config, "valid")(config, warm[1], valid_sampler, shuffle=False)
    test_data = get_dataloader(config, "test")(config, warm[2], test_sampler, shuffle=False)
    return train_data, valid_data, test_data


def _withhold(used_ids_per_phase, items, n_items):
    """Add ``items`` to every user's used ids of every phase (numpy arrays of sets), so that they
    are neither sampled as negatives nor ranked as warm candidates."""
    items = set(items.tolist())
    for used_ids in {id(u): u for u in used_ids_per_phase}.values():
        for used in used_ids:
            used |= items
            if len(used) + 1 >= n_items:  # + 1: the padding id
                raise ColdStartError(
                    "with the cold items withheld, a user has used every remaining item and no "
                    "negative can be sampled: lower cold_start_items or filter such users "
                    "(user_inter_num_interval)"
                )


@torch.no_grad()
def evaluate_cold_start(trainer, dataset, show_progress=False):
    """Evaluate ``trainer.model`` on the cold test set of ``dataset`` (see the module docstring).

    Args:
        trainer (Trainer): the run's trainer, after ``fit`` and the test evaluation (its model is
            the one to evaluate; its ``eval_collector`` holds the training data's item counts).
        dataset (Dataset): the dataset :func:`data_preparation` split.
        show_progress (bool): a progress bar over batches.

    Returns:
        OrderedDict or None: ``{"recall@10": value, ...}``, or None without ``cold_start_items``.
    """
    cold = getattr(dataset, "cold_start", None)
    if cold is None:
        return None
    model = trainer.model
    model.eval()
    n_items = dataset.item_num
    if cold.candidates == "cold":
        excluded = ~cold.mask(n_items)
    else:  # the evaluator masks the user's history
        excluded = torch.zeros(n_items, dtype=torch.bool)
    excluded = excluded.to(trainer.device)

    def score(users):
        scores = model.full_sort_predict(users).view(len(users), n_items)
        return scores.masked_fill(excluded, -np.inf)

    evaluator = FullSortEvaluator(trainer.config, cold.data, trainer.device)
    return evaluator.evaluate(
        score, show_progress=show_progress, collected=trainer.eval_collector.data_struct
    )
