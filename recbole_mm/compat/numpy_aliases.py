"""numpy 2 removed aliases that RecBole 1.2.1 still uses.

RecBole's code calls ``np.float``, ``np.bool`` and ``np.long`` and relies on
``Config.compatibility_settings`` to recreate them from ``np.float_``, ``np.complex_`` and
``np.unicode_`` — which numpy 2 removed too, so building any ``Config`` raises AttributeError.
We define the aliases from names that exist in numpy 1.x and 2.x alike, and only where missing.
"""

import numpy as np

# alias -> the type RecBole means by it (RecBole's own mapping, spelled with numpy-2-safe names)
ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}


def define_aliases(_config=None):
    """Define the numpy aliases RecBole uses where this numpy lacks them.

    Also stands in for ``recbole.config.Config.compatibility_settings`` (hence the unused argument).
    """
    for name, target in ALIASES.items():
        if name not in vars(np):  # vars(): hasattr would trip numpy 1.x deprecation warnings
            setattr(np, name, target)


def apply():
    from recbole.config.configurator import Config

    define_aliases()
    Config.compatibility_settings = define_aliases
