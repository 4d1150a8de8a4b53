"""pandas 3 breaks RecBole's dataset code in two silent ways and one noisy one; all are fixed here.

1. Copy-on-write (the default in pandas 3) ignores RecBole's chained ``fillna``.

``Dataset._load_feat`` and ``Dataset._fill_nan`` call ``df[field].fillna(..., inplace=True)``.
Under copy-on-write that fills a temporary copy, so missing cells stay NaN: sequence fields then
crash on ``NaN.split`` and missing tokens/floats reach the model as NaN. Two fixes:

- ``_fill_nan`` is replaced by one that assigns the filled column back;
- the ``pd`` that ``recbole.data.dataset.dataset`` reads files with fills empty sequence cells with
  ``""`` right after ``read_csv``, which is what RecBole's own chained call meant to do.

RecBole's chained call still runs, now on filled cells, and pandas warns about it on every dataset
with a sequence field (``ChainedAssignmentError`` in pandas 3, a ``FutureWarning`` in 2.2): that
warning, from that module only, is silenced, since the fill it is about is done.

2. ``Series.agg(len)`` returns the Series' length in pandas 3, not each cell's length; RecBole
   splits token_seq / float_seq columns with it (remapping, normalising, discretising), so every
   sequence field ends up in one cell. While a RecBole ``Dataset`` is built under pandas >= 3,
   ``Series.agg(len)`` gives per-cell lengths again (other functions are untouched).

3. Column arrays are read-only in pandas 3 (copy-on-write), and ``Dataset._dataframe_to_interaction``
   wraps them in tensors that share their memory; torch warns on every run that writing to such a
   tensor is undefined behaviour. Under pandas >= 3 the conversion reads writable copies of the
   columns instead (one copy of each table while it is converted).

pandas 3.1 deprecates the ``inplace`` keyword (PDEP-8) that RecBole's dataset code passes to
``drop``, ``drop_duplicates``, ``reset_index`` and ``sort_values``, and warns on every dataset load;
the warnings from RecBole's dataset modules are silenced (nothing a user can change), and
``setup.py`` keeps pandas below 4, where the keyword is to go.
"""

import contextlib
import functools
import warnings

import numpy as np
import pandas as pd

_SEQ_TYPES = ("token_seq", "float_seq")


class _PandasForRecBoleDataset:
    """Stands in for the ``pandas`` module inside ``recbole.data.dataset.dataset``.

    Everything is pandas' own except ``read_csv``, which fills empty ``*_seq`` cells with ``""``.
    RecBole reads atomic files with ``usecols`` named ``field:type``, which is how the sequence
    columns are recognised.
    """

    def __getattr__(self, name):
        return getattr(pd, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        df = pd.read_csv(*args, **kwargs)
        for column in df.columns:
            if isinstance(column, str) and column.endswith(_SEQ_TYPES):
                df[column] = df[column].fillna("")
        return df


def fill_nan(self):
    """Impute missing values the way RecBole documents it, assigning each column back.

    token -> 0 (``[PAD]``); float -> the column mean; token_seq / float_seq -> an empty array.
    """
    from recbole.utils import FeatureType

    for feat_name in self.feat_name_list:
        feat = getattr(self, feat_name)
        for field in feat:
            ftype = self.field2type[field]
            if ftype == FeatureType.TOKEN:
                feat[field] = feat[field].fillna(value=0)
            elif ftype == FeatureType.FLOAT:
                feat[field] = feat[field].fillna(value=feat[field].mean())
            else:
                dtype = np.int64 if ftype == FeatureType.TOKEN_SEQ else np.float64
                feat[field] = feat[field].apply(
                    lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x
                )


@contextlib.contextmanager
def _per_cell_len_agg():
    """Within the block, ``Series.agg(len)`` returns each cell's length (pandas 2 behaviour)."""
    original = pd.Series.agg

    def agg(self, func=None, *args, **kwargs):
        if func is len:
            return self.map(len)
        return original(self, func, *args, **kwargs)

    pd.Series.agg = pd.Series.aggregate = agg
    try:
        yield
    finally:
        pd.Series.agg = pd.Series.aggregate = original


def _building_with_per_cell_len(init):
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        with _per_cell_len_agg():
            return init(self, *args, **kwargs)

    wrapper.per_cell_len = True
    return wrapper


class _Column:
    """What RecBole's conversion reads of a column: ``.values``, here a writable copy."""

    def __init__(self, series):
        self.values = series.to_numpy(copy=True)


def _converting_writable_copies(convert):
    @functools.wraps(convert)
    def wrapper(self, data):
        return convert(self, {field: _Column(data[field]) for field in data})

    wrapper.writable_copies = True
    return wrapper


def apply():
    import recbole.data.dataset.dataset as dataset_module

    if not isinstance(dataset_module.pd, _PandasForRecBoleDataset):
        dataset_module.pd = _PandasForRecBoleDataset()
    dataset_module.Dataset._fill_nan = fill_nan
    warnings.filterwarnings(
        "ignore",
        message="A value is (being|trying to be) set on a copy of a DataFrame or Series through "
        "chained assignment using an inplace method",
        module=r"recbole\.data\.dataset\.dataset",
    )
    warnings.filterwarnings(
        "ignore", message="The inplace keyword in .* is deprecated", module=r"recbole\.data\.dataset\."
    )
    if int(pd.__version__.split(".")[0]) < 3:
        return
    dataset = dataset_module.Dataset
    if not getattr(dataset.__init__, "per_cell_len", False):
        dataset.__init__ = _building_with_per_cell_len(dataset.__init__)
    if not getattr(dataset._dataframe_to_interaction, "writable_copies", False):
        dataset._dataframe_to_interaction = _converting_writable_copies(dataset._dataframe_to_interaction)
