"""Per-user test metrics, saved in the run record for paired significance tests.

RecBole only returns the mean of each metric over users. With ``save_per_user: True`` a run also
keeps each test user's value of every per-user metric in its config ``metrics`` (Hit, MRR, MAP,
Recall, NDCG, Precision, AveragePopularity/ARP, TailPercentage, LongTailShare: the metrics that
are means over users), computed by :class:`~recbole_mm.fast_path.FullSortEvaluator` from the
model the test result came from. Their mean is the reported test value. Metrics of the whole
recommendation list (ItemCoverage, GiniIndex, ShannonEntropy, PopRSP) have no per-user value.
"""

import numpy as np
from recbole.data.dataloader import FullSortEvalDataLoader

from recbole_mm.fast_path.evaluator import SUPPORTED_METRICS, FullSortEvaluator

# means over users among the metrics FullSortEvaluator computes
PER_USER_METRICS = tuple(
    m for m in SUPPORTED_METRICS if m not in ("itemcoverage", "giniindex", "shannonentropy")
)


def check_supported(test_data):
    """Raise ValueError unless ``test_data`` is a full-sort loader of a general model."""
    if not isinstance(test_data, FullSortEvalDataLoader) or test_data.is_sequential:
        raise ValueError(
            "save_per_user: True needs full-sort evaluation of a general model "
            "(eval_args: {mode: full}); per-user values of sampled evaluation are not comparable"
        )


def per_user_metrics(config):
    """The metrics of config ``metrics`` that have a value per user (list of str, lower case)."""
    return [m.lower() for m in config["metrics"] if m.lower() in PER_USER_METRICS]


def per_user_results(trainer, test_data):
    """Each test user's metric values, from ``trainer.model`` as it is now.

    Call it right after ``trainer.evaluate(test_data, ...)``: the model then holds the weights
    the test result came from.

    Args:
        trainer (Trainer): RecBole's or recbole_mm's trainer of the run.
        test_data (FullSortEvalDataLoader): the test loader.

    Returns:
        dict: ``{"users": [user token, ...], "metrics": {"ndcg@10": [value per user], ...}}``.
    """
    check_supported(test_data)
    config = trainer.config
    metrics = per_user_metrics(config)
    evaluator = FullSortEvaluator(config, test_data, trainer.device, metrics=metrics)
    trainer.model.eval()
    values = evaluator.per_user(
        lambda users: trainer._full_sort_batch_eval((users, None, None, None))[1],
        collected=trainer.eval_collector.data_struct,
    )
    dataset = test_data._dataset
    users = dataset.id2token(dataset.uid_field, test_data.uid_list.numpy())
    return {
        "users": [str(u) for u in users],
        "metrics": {name: np.asarray(v, dtype=np.float64).tolist() for name, v in values.items()},
    }
