r"""Popularity-bias metrics as RecBole metric plugins: ``metrics: [ARP, PopRSP, LongTailShare]``.

Popularity :math:`\phi(i)` is the number of training interactions of item :math:`i` (RecBole's
``data.count_items``). The short head :math:`H` is the smallest set of most popular items whose
training interactions add up to at least ``popularity_head_share`` (default 0.8) of all training
interactions (ties in popularity broken by item id); every other item, including items without
training interactions, is in the long tail :math:`T`. The padding item 0 is in neither.

With :math:`R_u` the top-k list of user :math:`u` and :math:`U` the evaluated users:

- ``ARP@k`` (average recommendation popularity, Abdollahpouri et al. 2019; RecBole's
  AveragePopularity, computed without its per-item Python loop):
  :math:`\frac{1}{|U|}\sum_u \frac{1}{k}\sum_{i \in R_u} \phi(i)`. Lower: less popularity bias.
- ``LongTailShare@k``: the share of recommendation slots given to long-tail items,
  :math:`\frac{1}{|U|}\sum_u \frac{|R_u \cap T|}{k}`. Higher: more long-tail exposure.
- ``PopRSP@k`` (popularity-based ranking-based statistical parity, Zhu, Wang and Caverlee,
  SIGIR 2020): for each group :math:`g \in \{H, T\}`,
  :math:`P(R@k \mid g) = \frac{\sum_u |R_u \cap g|}{\sum_u |C_u \cap g|}`, where :math:`C_u` are
  the items the user's ranking could recommend (every item but the padding item and those masked
  for the user, i.e. its training (+ validation) history); ``PopRSP@k`` is the standard deviation
  of the two probabilities over their mean (population std). 0 is perfect parity; lower is fairer.

ItemCoverage, GiniIndex, ShannonEntropy and TailPercentage are RecBole's own (usable since
:mod:`recbole_mm.compat.evaluator` fixed their crash); note that RecBole's ItemCoverage and
GiniIndex count the padding item in the catalogue size (``data.num_items``).
"""

import numpy as np
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

from recbole_mm.config import cutoffs

DEFAULT_HEAD_SHARE = 0.8


def popularity(count_items, num_items):
    """Training interactions per item id, int64 ``[num_items]`` (0 for unseen items).

    Args:
        count_items (Mapping): {item id: training interactions} (RecBole's ``data.count_items``).
        num_items (int): items including the padding item 0.
    """
    counts = np.zeros(num_items, dtype=np.int64)
    if count_items:
        ids = np.fromiter(count_items.keys(), dtype=np.int64, count=len(count_items))
        counts[ids] = np.fromiter(count_items.values(), dtype=np.int64, count=len(count_items))
    return counts


def long_tail_mask(counts, head_share=DEFAULT_HEAD_SHARE):
    """Bool ``[num_items]``: True for long-tail items, False for the short head and padding 0.

    Args:
        counts (numpy.ndarray): int ``[num_items]``, training interactions per item id.
        head_share (float or None): in (0, 1]; the short head holds at least this share of the
            interactions (None: 0.8).
    """
    head_share = DEFAULT_HEAD_SHARE if head_share is None else float(head_share)
    if not 0 < head_share <= 1:
        raise ValueError(f"popularity_head_share must be in (0, 1], got {head_share}")
    items = np.arange(1, len(counts))
    order = items[np.lexsort((items, -counts[1:]))]  # most popular first, ties by item id
    cumulative = np.cumsum(counts[order])
    total = cumulative[-1] if len(cumulative) else 0
    tail = np.ones(len(counts), dtype=bool)
    tail[0] = False
    if total > 0:
        head_size = int(np.searchsorted(cumulative, head_share * total, side="left")) + 1
        tail[order[:head_size]] = False
    return tail


def pop_rsp(items, counts, masked, head_share=DEFAULT_HEAD_SHARE):
    """PopRSP of the top-k lists (float; see the module docstring).

    Args:
        items (numpy.ndarray): int64 ``[U, k]``, each evaluated user's top-k item ids.
        counts (numpy.ndarray): int ``[num_items]``, training interactions per item id.
        masked (numpy.ndarray): int ``[num_items]``, how many of the users had each item masked.
        head_share (float or None): as for :func:`long_tail_mask`.
    """
    tail = long_tail_mask(counts, head_share)
    head = ~tail
    head[0] = False  # the padding item
    n_users = items.shape[0]
    probabilities = []
    for group in (head, tail):
        candidates = n_users * int(group.sum()) - int(masked[group].sum())
        if candidates <= 0:
            raise ValueError(
                "PopRSP: the short head or the long tail has no candidate item; the data has "
                "too few items for a popularity split (check popularity_head_share)"
            )
        probabilities.append(group[items].sum() / candidates)
    mean = np.mean(probabilities)
    return float(np.std(probabilities) / mean) if mean > 0 else 0.0


class _PopularityMetric(AbstractMetric):
    """Top-k metrics of item popularity, from the top-k lists and the training item counts."""

    metric_type = EvaluatorType.RANKING
    metric_need = ["rec.items", "data.num_items", "data.count_items"]

    def __init__(self, config):
        super().__init__(config)
        self.topk = cutoffs(config["topk"])
        self.head_share = config["popularity_head_share"]

    def used_info(self, dataobject):
        """(top-k item ids int64 ``[U, K]``, training interactions per item id ``[num_items]``)."""
        items = dataobject.get("rec.items").numpy().astype(np.int64)
        counts = popularity(dataobject.get("data.count_items"), dataobject.get("data.num_items"))
        return items, counts

    def calculate_metric(self, dataobject):
        items, counts = self.used_info(dataobject)
        name = type(self).__name__.lower()
        return {
            f"{name}@{k}": round(self.value(items[:, :k], counts, dataobject), self.decimal_place)
            for k in self.topk
        }

    def value(self, items, counts, dataobject):
        """The metric of the top-k lists ``items`` int64 ``[U, k]`` (float)."""
        raise NotImplementedError


class _PerUserPopularityMetric(_PopularityMetric):
    """A mean over users of the mean of ``item_values`` over each user's top-k list."""

    def item_values(self, counts):
        """The value of each item id, ``[num_items]``, from its training interactions."""
        raise NotImplementedError

    def per_user(self, items, counts):
        """float64 ``[U, K]``: each user's mean item value over the top 1..K."""
        values = self.item_values(counts)[items]
        return values.cumsum(axis=1) / np.arange(1, items.shape[1] + 1)

    def calculate_metric(self, dataobject):
        # the mean over users of the [U, K] matrix, as RecBole's AveragePopularity takes it
        items, counts = self.used_info(dataobject)
        means = self.per_user(items, counts).mean(axis=0)
        name = type(self).__name__.lower()
        return {f"{name}@{k}": round(means[k - 1], self.decimal_place) for k in self.topk}


class ARP(_PerUserPopularityMetric):
    """Average recommendation popularity of the top-k lists (lower: less popularity bias)."""

    smaller = True

    def item_values(self, counts):
        return counts


class LongTailShare(_PerUserPopularityMetric):
    """Share of the top-k slots given to long-tail items (higher: more long-tail exposure)."""

    smaller = False

    def item_values(self, counts):
        return long_tail_mask(counts, self.head_share).astype(np.int64)


class PopRSP(_PopularityMetric):
    """Ranking-based statistical parity between short-head and long-tail items (lower: fairer)."""

    smaller = True
    metric_need = _PopularityMetric.metric_need + ["rec.masked_count"]

    def value(self, items, counts, dataobject):
        masked = dataobject.get("rec.masked_count").numpy().astype(np.int64)
        return pop_rsp(items, counts, masked, self.head_share)
