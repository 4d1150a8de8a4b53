"""Search evaluation: rank every item for each (user, query) of a split.

One evaluation case per distinct ``(user, query)`` of the split's searches; its relevant items
are the items of those searches. Every item is a candidate (nothing is masked: a user may search
for an item seen before, and items without training interactions, the cold-start items, must be
found by their content). Metrics are RecBole's top-k formulas (NDCG, Recall, MAP, Precision, Hit,
MRR, from :func:`recbole_mm.fast_path.evaluator.topk_metric_values`), averaged over the cases and
reported as ``search_<metric>@<k>`` so that they sit beside the recommendation metrics of a run.
"""

from collections import OrderedDict

import numpy as np
import torch

from recbole_mm.config import cutoffs
from recbole_mm.fast_path.evaluator import TOPK_METRICS, topk_metric_values

PREFIX = "search_"


def search_metric_names(config):
    """(metrics lower case, top-k list) of config ``search_metrics`` / ``search_topk``."""
    metrics = [m.lower() for m in (config["search_metrics"] or [])]
    unknown = [m for m in metrics if m not in TOPK_METRICS]
    if unknown:
        raise ValueError(f"search_metrics {unknown}: choose among {list(TOPK_METRICS)}")
    return metrics, cutoffs(config["search_topk"])


class SearchEvaluator:
    """Search metrics of the searches ``rows`` of a :class:`~recbole_mm.search.data.SearchLog`.

    Args:
        log (SearchLog): the dataset's searches.
        rows (numpy.ndarray): indices of the searches of one split.
        metrics (list of str): lower-case top-k metric names.
        topk (list of int): cut-offs.
        batch_size (int): cases scored per batch.
    """

    def __init__(self, log, rows, metrics, topk, batch_size=256):
        if len(rows) == 0:
            raise ValueError("no searches in this split: nothing to evaluate")
        self.metrics, self.topk, self.max_k = metrics, topk, max(topk)
        self.n_items = log.n_items
        self.batch_size = batch_size
        users, queries, items = log.users[rows], log.query[rows], log.items[rows]
        case_key = users * len(log.queries) + queries
        keys, case = np.unique(case_key, return_inverse=True)
        self.users = torch.from_numpy(keys // len(log.queries))
        self.queries = torch.from_numpy(keys % len(log.queries))
        # (case, item) as sorted unique scalar keys: relevance of a ranked item is one searchsorted
        relevant = np.unique(case * self.n_items + items)
        self.relevant = torch.from_numpy(relevant)
        self.n_relevant = torch.from_numpy(np.bincount(relevant // self.n_items, minlength=len(keys)))

    def __len__(self):
        return len(self.users)

    @torch.no_grad()
    def evaluate(self, score_fn, device="cpu"):
        """Rank all items for every case and average the metrics.

        Args:
            score_fn (callable): (users LongTensor [B], query ids LongTensor [B], on ``device``)
                -> scores [B, n_items] (item 0, the padding item, is never ranked).

        Returns:
            OrderedDict: ``{"search_ndcg@10": value, ...}``.
        """
        device = torch.device(device)
        relevant = self.relevant.to(device)
        hits = []
        for start in range(0, len(self), self.batch_size):
            end = min(start + self.batch_size, len(self))
            scores = score_fn(self.users[start:end].to(device), self.queries[start:end].to(device))
            scores = scores.view(end - start, self.n_items).clone()
            scores[:, 0] = -np.inf
            top = torch.topk(scores, self.max_k, dim=-1).indices
            keys = torch.arange(start, end, device=device).unsqueeze(1) * self.n_items + top
            found = torch.searchsorted(relevant, keys).clamp_(max=len(relevant) - 1)
            hits.append((relevant[found] == keys).cpu())
        hits = torch.cat(hits).to(torch.float64)
        n_relevant = self.n_relevant.to(torch.float64)
        result = OrderedDict()
        for metric in self.metrics:
            means = topk_metric_values(metric, hits, n_relevant).numpy().mean(axis=0)
            for k in self.topk:
                result[f"{PREFIX}{metric}@{k}"] = float(means[k - 1])
        return result
