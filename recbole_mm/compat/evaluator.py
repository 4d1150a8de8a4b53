"""``ItemCoverage`` and ``AveragePopularity`` crash RecBole 1.2.1's evaluation.

``Collector.get_data_struct`` calls ``.cpu()`` on everything it collected, but ``data.num_items``
is a plain int and ``data.count_items`` a ``Counter`` ("'int' object has no attribute 'cpu'").
Only tensors are moved to the CPU here; the rest of the method behaves as RecBole's.

One collected entry is added for metrics that need to know which items each user's ranking could
recommend (PopRSP): ``rec.masked_count``, int64 ``[n_items]``, how many evaluated users had each
item masked (score -inf: the padding item, the user's history, non-candidates of sampled
evaluation), summed over the batches of one evaluation.
"""

import copy

import torch

# per-batch entries that RecBole drops after handing a snapshot to the evaluator
_BATCH_KEYS = (
    "rec.topk",
    "rec.meanrank",
    "rec.score",
    "rec.items",
    "data.label",
    "rec.masked_count",
)
MASKED_COUNT = "rec.masked_count"
_recbole_eval_batch_collect = None


def get_data_struct(self):
    """Return a CPU snapshot of the collected evaluation data and reset the per-batch entries."""
    store = self.data_struct._data_dict
    for key, value in store.items():
        if isinstance(value, torch.Tensor):
            store[key] = value.cpu()
    snapshot = copy.deepcopy(self.data_struct)
    for key in _BATCH_KEYS:
        if key in self.data_struct:
            del self.data_struct[key]
    return snapshot


def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
    """RecBole's ``eval_batch_collect``, plus ``rec.masked_count`` when a metric needs it."""
    _recbole_eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i)
    if self.register.need(MASKED_COUNT):
        masked = torch.isneginf(scores_tensor.view(len(scores_tensor), -1)).sum(dim=0)
        if MASKED_COUNT in self.data_struct:
            masked = masked + self.data_struct.get(MASKED_COUNT)
        self.data_struct.set(MASKED_COUNT, masked)


def apply():
    global _recbole_eval_batch_collect
    from recbole.evaluator.collector import Collector

    Collector.get_data_struct = get_data_struct
    if _recbole_eval_batch_collect is None:
        _recbole_eval_batch_collect = Collector.eval_batch_collect
        Collector.eval_batch_collect = eval_batch_collect
