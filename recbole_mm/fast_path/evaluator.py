"""Full-sort top-k evaluation on the model's device, giving RecBole's numbers.

RecBole's full-sort evaluation builds every batch in Python (per-user tensors concatenated in the
data loader), scatters a dense ``[users, items]`` positive matrix per batch, moves the top-k
matrix to the CPU and computes the metrics in numpy with per-user Python loops (MRR, MAP, NDCG,
AveragePopularity, TailPercentage). Here each user's history and positives are laid out once per
evaluation loader as flat device arrays; a batch is one slice of them: score, mask, ``torch.topk``,
a ``searchsorted`` membership test. The per-user metric values ``[users, k]`` are computed on the
device from the hit matrix; only their mean over users is taken on the CPU, by numpy, because
RecBole's summation order decides values that fall on a rounding boundary.

Equality with RecBole, by construction:

- the same users per batch (``max(eval_batch_size // n_items, 1)``, the loader's order), scored by
  the same code (the trainer passes RecBole's own ``_full_sort_batch_eval``), so the scores are the
  same tensors;
- the same mask: padding item 0 and the loader's ``uid2history_item`` (train items at valid time,
  train + valid at test time, minus the user's positives of that phase, as RecBole builds them);
- ``torch.topk`` with ``k = max(topk)`` on the same ``[batch, n_items]`` tensor, so ties break the
  same way;
- RecBole's metric formulas in float64, with sums along the top-k list taken left to right (as
  numpy's ``cumsum``) and numpy's discounts for NDCG; means and rounding by numpy, as RecBole's.
"""

from collections import OrderedDict

import numpy as np
import torch
from recbole.utils import set_color
from tqdm import tqdm

from recbole_mm.config import cutoffs
from recbole_mm.plugins.metrics import long_tail_mask, pop_rsp, popularity

TOPK_METRICS = ("hit", "mrr", "map", "recall", "ndcg", "precision")
ITEM_METRICS = (
    "itemcoverage",
    "averagepopularity",
    "arp",
    "longtailshare",
    "poprsp",
    "giniindex",
    "shannonentropy",
    "tailpercentage",
)
SUPPORTED_METRICS = TOPK_METRICS + ITEM_METRICS


def unsupported_metrics(metrics):
    """The names in ``metrics`` (config ``metrics``) this evaluator does not compute (list)."""
    return [m for m in metrics if m.lower() not in SUPPORTED_METRICS]


def _flatten(per_user):
    """Concatenate a sequence of 1-d int64 tensors; returns (flat [T], lengths [U] numpy int64)."""
    lengths = np.fromiter((len(t) for t in per_user), dtype=np.int64, count=len(per_user))
    flat = torch.cat(list(per_user)) if len(per_user) else torch.zeros(0, dtype=torch.int64)
    return flat.long(), lengths


class FullSortEvaluator:
    """Full-sort evaluation of one RecBole ``FullSortEvalDataLoader``, on ``device``.

    Args:
        config (Config): reads ``metrics``, ``topk``, ``metric_decimal_place``, ``eval_batch_size``
            and ``tail_ratio``.
        eval_data (FullSortEvalDataLoader): its users (``uid_list``, ``user_df``), positives
            (``uid2positive_item``) and masked history (``uid2history_item``).
        device (torch.device): where scores, masks and top-k lists live.
        metrics (list of str or None): the metrics to compute; default: config ``metrics``.
        scores_per_batch (int or None): scores computed per batch (``scores_per_batch // n_items``
            users); default: config ``eval_batch_size``.

    The layout is built once here (one Python pass over the users); :meth:`evaluate` can then be
    called every epoch.
    """

    def __init__(self, config, eval_data, device, metrics=None, scores_per_batch=None):
        metrics = config["metrics"] if metrics is None else metrics
        unsupported = unsupported_metrics(metrics)
        if unsupported:
            raise ValueError(
                f"FullSortEvaluator cannot compute {unsupported}; it computes "
                f"{list(SUPPORTED_METRICS)} (use RecBole's Trainer.evaluate for the others)"
            )
        self.device = torch.device(device)
        self.metrics = [m.lower() for m in metrics]
        self.topk = cutoffs(config["topk"])
        self.max_k = max(self.topk)
        self.decimal_place = config["metric_decimal_place"]
        self.tail_ratio = config["tail_ratio"]
        self.head_share = config["popularity_head_share"]
        self.n_items = eval_data._dataset.item_num
        scores_per_batch = scores_per_batch or config["eval_batch_size"]
        self.users_per_batch = max(scores_per_batch // self.n_items, 1)

        uids = eval_data.uid_list.numpy()
        self.n_users = len(uids)
        self.user_df = eval_data.user_df.to(self.device)
        rows = torch.arange(self.n_users, device=self.device)

        history, history_len = _flatten(eval_data.uid2history_item[uids])
        self.history_items = history.to(self.device)
        # row of each history entry, and where each user's entries start (CPU: slice bounds)
        self.history_rows = torch.repeat_interleave(
            rows, torch.from_numpy(history_len).to(self.device)
        )
        self.history_start = np.concatenate([[0], np.cumsum(history_len)])

        positives, positive_len = _flatten(eval_data.uid2positive_item[uids])
        positive_rows = torch.repeat_interleave(
            rows, torch.from_numpy(positive_len).to(self.device)
        )
        # (row, item) pairs as sorted scalar keys: membership of a top-k item is one searchsorted
        self.positive_keys = torch.sort(positive_rows * self.n_items + positives.to(self.device))[0]
        self.positive_len = torch.from_numpy(positive_len).to(self.device)

    def _is_positive(self, rows, items):
        """Whether each (row, item) is a positive: rows ``[B, 1]``, items ``[B, K]`` -> bool."""
        keys = rows * self.n_items + items
        found = torch.searchsorted(self.positive_keys, keys).clamp_(max=len(self.positive_keys) - 1)
        return self.positive_keys[found] == keys

    def batches(self):
        """(start, end) user-row ranges of the evaluation batches, in RecBole's order (list)."""
        starts = range(0, self.n_users, self.users_per_batch)
        return [(s, min(s + self.users_per_batch, self.n_users)) for s in starts]

    def mask(self, scores, start, end):
        """-inf for the padding item and the history of users ``start:end`` in ``[B, n_items]``."""
        scores[:, 0] = -np.inf
        a, b = self.history_start[start], self.history_start[end]
        scores[self.history_rows[a:b] - start, self.history_items[a:b]] = -np.inf
        return scores

    @torch.no_grad()
    def _rank(self, score_fn, show_progress, keep_items):
        """Top-k of every user: (hits float64 ``[U, max_k]``, top item ids ``[U, max_k]`` or None)."""
        hits, top_items = [], []
        batches = self.batches()
        if show_progress:
            batches = tqdm(batches, ncols=100, desc=set_color("Evaluate   ", "pink"))
        for start, end in batches:
            scores = score_fn(self.user_df[start:end]).view(end - start, self.n_items)
            scores = self.mask(scores, start, end)
            top = torch.topk(scores, self.max_k, dim=-1).indices
            rows = torch.arange(start, end, device=self.device).unsqueeze(1)
            hits.append(self._is_positive(rows, top))
            if keep_items:
                top_items.append(top)
        return self._float64(torch.cat(hits)), torch.cat(top_items) if keep_items else None

    def evaluate(self, score_fn, show_progress=False, collected=None):
        """Score every user, rank all items, and compute the metrics.

        Args:
            score_fn (callable): ``Interaction`` of ``B`` users (rows of the loader's ``user_df``,
                on ``device``) -> scores of all items, ``[B, n_items]`` or ``[B * n_items]``.
            show_progress (bool): a progress bar over batches.
            collected (DataStruct or None): RecBole's ``Collector.data_struct`` after
                ``data_collect(train_data)``; the item metrics read ``data.num_items`` and
                ``data.count_items`` from it.

        Returns:
            OrderedDict: ``{"recall@10": value, ...}`` in the order of config ``metrics`` and
            ``topk``, as RecBole's ``Trainer.evaluate`` returns it.
        """
        result = OrderedDict()
        for metric, values in self._values(score_fn, show_progress, collected).items():
            if isinstance(values, torch.Tensor):
                result.update(self._per_k(metric, values))
            else:
                result.update(values)
        return result

    def per_user(self, score_fn, collected=None):
        """Each user's value of every per-user metric (the top-k metrics and AveragePopularity).

        Args:
            score_fn, collected: as for :meth:`evaluate`.

        Returns:
            dict: ``{"ndcg@10": float64 array [U], ...}``, users in the order of the loader's
            ``uid_list``; their mean is the value :meth:`evaluate` reports (before rounding).
        """
        values = {}
        for metric, per_user in self._values(score_fn, False, collected).items():
            if isinstance(per_user, torch.Tensor):
                array = per_user.cpu().numpy()
                values.update({f"{metric}@{k}": array[:, k - 1] for k in self.topk})
        return values

    def _values(self, score_fn, show_progress, collected):
        """{metric: per-user values ``[U, max_k]`` (tensor) or {metric@k: value} for the
        metrics that are not means over users}."""
        keep_items = any(m in ITEM_METRICS for m in self.metrics)
        hits, top_items = self._rank(score_fn, show_progress, keep_items)
        positive_len = self._float64(self.positive_len)
        values = OrderedDict()
        for metric in self.metrics:
            if metric in TOPK_METRICS:
                values[metric] = topk_metric_values(metric, hits, positive_len)
            else:
                values[metric] = self._item_metric(metric, top_items, collected)
        return values

    def _float64(self, tensor):
        # float64 as RecBole's numpy code; MPS has no float64, so the (small) matrices go to the CPU
        device = "cpu" if tensor.device.type == "mps" else tensor.device
        return tensor.to(device=device, dtype=torch.float64)

    def _per_k(self, metric, values):
        """``{metric@k: round(mean over users)}`` from per-user values ``[U, max_k]``.

        The mean is numpy's, over the whole ``[U, max_k]`` array as RecBole takes it: its
        row-by-row float64 sum decides values that sit on a rounding boundary (with few users,
        e.g. Precision = 141 / 2400 = 0.05875, they do), which any other summation order flips.
        """
        means = values.cpu().numpy().mean(axis=0)
        # np.float64's own __round__, as RecBole's round(numpy value, places) calls it
        return {f"{metric}@{k}": round(means[k - 1], self.decimal_place) for k in self.topk}

    def _masked_count(self):
        """int64 ``[n_items]``: how many users had each item masked (the padding item, their
        history), as ``rec.masked_count`` counts the -inf scores of RecBole's evaluation."""
        pairs = torch.unique(self.history_rows * self.n_items + self.history_items)
        masked = torch.bincount(pairs % self.n_items, minlength=self.n_items)
        masked[0] = self.n_users
        return masked.cpu().numpy()

    def _item_metric(self, metric, top_items, collected):
        """One of :data:`ITEM_METRICS` from the top-k item ids ``[U, max_k]``: per-user values
        ``[U, max_k]`` (AveragePopularity, ARP, LongTailShare, TailPercentage) or
        ``{metric@k: value}`` (the others)."""
        if collected is None:
            raise ValueError(
                f"metric {metric} needs the training data's item counts: pass "
                "collected=trainer.eval_collector.data_struct, after "
                "trainer.eval_collector.data_collect(train_data)"
            )
        if metric in ("itemcoverage", "giniindex", "shannonentropy"):
            num_items = collected.get("data.num_items")
            return {
                f"{metric}@{k}": _distribution_metric(
                    metric, top_items[:, :k], num_items, self.decimal_place
                )
                for k in self.topk
            }
        counts = popularity(collected.get("data.count_items"), self.n_items)
        if metric == "poprsp":
            items, masked = top_items.cpu().numpy(), self._masked_count()
            return {
                f"{metric}@{k}": round(
                    pop_rsp(items[:, :k], counts, masked, self.head_share), self.decimal_place
                )
                for k in self.topk
            }
        if metric in ("averagepopularity", "arp"):
            per_item = counts
        elif metric == "longtailshare":
            per_item = long_tail_mask(counts, self.head_share).astype(np.int64)
        else:
            per_item = _tail_items(counts, self.tail_ratio)
        values = self._float64(torch.from_numpy(per_item).to(self.device)[top_items])
        ranks = torch.arange(1, self.max_k + 1, device=values.device, dtype=torch.float64)
        return values.cumsum(dim=1) / ranks  # integer sums: exact in any order


def _cumsum_in_order(values):
    """Row-wise cumulative sum ``[U, K]``, columns added left to right as numpy's ``cumsum``.

    ``torch.cumsum`` may associate differently (a parallel scan on CUDA), which changes the last bit
    of non-integer sums; K is small, so K vector additions cost nothing.
    """
    out = torch.empty_like(values)
    total = torch.zeros_like(values[:, 0])
    for j in range(values.shape[1]):
        total = total + values[:, j]
        out[:, j] = total
    return out


def topk_metric_values(metric, hits, positive_len):
    """Per-user values ``[U, K]`` of a :data:`TOPK_METRICS` metric at every cut-off 1..K.

    Args:
        hits (torch.Tensor): float64 ``[U, K]``, 1 where the j-th ranked item is a positive.
        positive_len (torch.Tensor): float64 ``[U]``, the number of positives of each user.
    """
    k = hits.shape[1]
    ranks = torch.arange(1, k + 1, device=hits.device, dtype=torch.float64)
    found = hits.cumsum(dim=1)  # integers: exact in any order
    if metric == "hit":
        return (found > 0).to(torch.float64)
    if metric == "recall":
        return found / positive_len.unsqueeze(1)
    if metric == "precision":
        return found / ranks
    if metric == "mrr":
        first = hits.argmax(dim=1, keepdim=True)  # the first maximum: the first hit, or 0 if none
        reciprocal = torch.where(hits.gather(1, first) > 0, 1.0 / (first + 1).to(hits.dtype), 0.0)
        return torch.where(ranks > first, reciprocal, 0.0)
    # MAP and NDCG normalise by the best achievable list: min(k, number of positives) hits
    ideal_len = torch.minimum(ranks, positive_len.clamp(max=k).unsqueeze(1))
    if metric == "map":
        return _cumsum_in_order(found / ranks * hits) / ideal_len
    if metric == "ndcg":
        # the discounts from numpy's log2, bit for bit the ones RecBole divides by
        gain_np = 1.0 / np.log2(np.arange(1, k + 1, dtype=np.float64) + 1)
        gain = torch.from_numpy(gain_np).to(hits.device)
        ideal = torch.from_numpy(np.cumsum(gain_np)).to(hits.device)[ideal_len.long() - 1]
        return _cumsum_in_order(hits * gain) / ideal
    raise ValueError(f"unknown top-k metric {metric}")


def _distribution_metric(metric, top_items, num_items, decimal_place):
    """ItemCoverage, GiniIndex or ShannonEntropy of the recommended items ``[U, k]``.

    Args:
        num_items (int): RecBole's ``data.num_items`` (the padding id included, as RecBole counts).
    """
    flat = top_items.reshape(-1)
    unique, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)
    total = len(flat)
    if metric == "itemcoverage":
        return round(len(unique) / num_items, decimal_place)
    if metric == "giniindex":
        sorted_counts = torch.sort(counts)[0]
        index = torch.arange(num_items - len(counts) + 1, num_items + 1, device=counts.device)
        value = np.int64(int(((2 * index - num_items - 1) * sorted_counts).sum())) / total
        value /= num_items
        return round(value, decimal_place)
    # RecBole sums -p log p in Python, items in order of first appearance (row by row): the same
    # order and the same scalar arithmetic give the same last bit
    positions = torch.arange(total, device=flat.device)
    first = torch.full_like(unique, total).scatter_reduce_(0, inverse, positions, "amin")
    result = 0.0
    for count in counts[torch.argsort(first)].tolist():
        p = count / total
        result += -p * np.log(p)
    return round(result / len(counts), decimal_place)


def _tail_items(counts, tail_ratio):
    """int64 ``[n_items]``: 1 for RecBole's long-tail items (TailPercentage), else 0.

    ``counts``: training interactions per item id ``[n_items]``; RecBole considers the items with at
    least one. ``tail_ratio`` > 1 is a count threshold; in (0, 1] the share of those items with the
    fewest interactions (ties broken by item id); unset or <= 0 means 0.1, as in RecBole.
    """
    ids = np.flatnonzero(counts)
    seen = counts[ids]
    tail = tail_ratio if tail_ratio is not None and tail_ratio > 0 else 0.1
    if tail > 1:
        chosen = ids[seen <= tail]
    else:
        order = np.lexsort((ids, seen))
        chosen = ids[order[: max(int(len(ids) * tail), 1)]]
    is_tail = np.zeros(len(counts), dtype=np.int64)
    is_tail[chosen] = 1
    return is_tail
