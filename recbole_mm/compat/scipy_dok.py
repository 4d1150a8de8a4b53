"""SciPy >= 1.13 dropped ``dok_matrix._update``.

RecBole's graph models (LightGCN, NGCF, SpectralCF, GCMC, NCL, KGIN, MCCLK) build their adjacency
matrix with ``A._update({(row, col): value})`` and fail with AttributeError at model build. SciPy's
public ``update`` does the same dict update, with bounds checks, so ``_update`` forwards to it.
"""

import scipy.sparse as sp


def _update(self, data):
    """Set ``self[row, col] = value`` for every ``(row, col): value`` in ``data`` (a dict)."""
    self.update(data)


def apply():
    for cls in {sp.dok_matrix, getattr(sp, "dok_array", sp.dok_matrix)}:
        if not hasattr(cls, "_update"):
            cls._update = _update
