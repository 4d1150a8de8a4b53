"""What a run record derives from a fit: the epoch whose model RecBole's early stopping kept."""

import pytest
from recbole.utils import early_stopping

from recbole_mm.record import kept_epoch


def recbole_kept_epoch(curve, bigger, patience=100):
    """The last epoch at which RecBole's own early-stopping rule saved the model."""
    best, step, saved = -float("inf") if bigger else float("inf"), 0, None
    for epoch, score in enumerate(curve):
        best, step, stop, update = early_stopping(score, best, step, patience, bigger=bigger)
        if update:
            saved = epoch
        if stop:
            break
    return saved


@pytest.mark.parametrize(
    "curve, bigger",
    [
        ([0.1, 0.3, 0.3, 0.2, 0.2, 0.1], True),  # a tie with the best: the later epoch is kept
        ([0.1, 0.2, 0.2, 0.2, 0.3, 0.1], True),
        ([0.3, 0.1, 0.2, 0.3], True),
        ([0.5], True),
        ([0.4, 0.2, 0.2, 0.3], False),  # a smaller-is-better valid_metric
    ],
)
def test_kept_epoch_follows_recbole_early_stopping(curve, bigger):
    assert kept_epoch(curve, bigger=bigger) == recbole_kept_epoch(curve, bigger)
