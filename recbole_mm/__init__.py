"""recbole_mm: plugin-extensible multimodal recommendation on RecBole 1.2.1.

Importing this package applies the RecBole compatibility fixes once (:mod:`recbole_mm.compat`).
It never imports Ray: training works where Ray is not installed.
"""

import warnings

from recbole_mm import compat

compat.apply()
# our graph layers use torch's sparse CSR tensors by choice (measured fastest); torch's notice
# that their support is in beta is not for our users
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", module=r"recbole_mm\.")

from recbole_mm.config import Config  # noqa: E402
from recbole_mm.quick_start import (  # noqa: E402
    create_dataset,
    get_trainer,
    load_checkpoint,
    load_data_and_model,
    run,
    run_recbole,
)
from recbole_mm.registry import registry  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Config",
    "create_dataset",
    "get_trainer",
    "load_checkpoint",
    "load_data_and_model",
    "registry",
    "run",
    "run_recbole",
]
