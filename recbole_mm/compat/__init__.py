"""Fixes that make RecBole 1.2.1 run on today's numpy, SciPy, pandas and torch.

``import recbole_mm`` calls :func:`apply` once; calling it again does nothing. Each fix lives in its
own module, patches the smallest piece of RecBole that shows the breakage, and has a test in
``tests/test_compat.py`` that fails without it. Nothing here imports from the rest of recbole_mm.
"""

from recbole_mm.compat import checkpoint, evaluator, numpy_aliases, pandas_cow, scipy_dok

_FIXES = (numpy_aliases, scipy_dok, pandas_cow, evaluator, checkpoint)
_applied = False


def apply():
    """Apply every fix once (idempotent)."""
    global _applied
    if _applied:
        return
    for fix in _FIXES:
        fix.apply()
    _applied = True
