"""``ItemCoverage`` and ``AveragePopularity`` crash RecBole 1.2.1's evaluation.

``Collector.get_data_struct`` calls ``.cpu()`` on everything it collected, but ``data.num_items``
is a plain int and ``data.count_items`` a ``Counter`` ("'int' object has no attribute 'cpu'").
Only tensors are moved to the CPU here; the rest of the method behaves as RecBole's.
"""

import copy

import torch

# per-batch entries that RecBole drops after handing a snapshot to the evaluator
_BATCH_KEYS = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label")


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


def apply():
    from recbole.evaluator.collector import Collector

    Collector.get_data_struct = get_data_struct
