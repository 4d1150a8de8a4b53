"""Hyper-parameter search with Ray Tune: ``recbole-mm tune`` (see ``docs/tune.md``).

- :mod:`recbole_mm.tune.space`: YAML search spaces (``properties/tune/<Model>.yaml``) to Ray Tune;
- :mod:`recbole_mm.tune.trainable`: one trial, reporting validation metrics every evaluation;
- :mod:`recbole_mm.tune.search`: the driver (model and baselines, same budget, test once);
- :mod:`recbole_mm.tune.report`: trial tables, the best-so-far plot and the summary;
- :mod:`recbole_mm.tune.command`: the ``tune`` subcommand.

Importing this package does not import Ray; :mod:`~recbole_mm.tune.search` and the trainable's
run do.
"""

from recbole_mm.tune.space import SearchSpace, TuneError, load_space, parse_space

__all__ = ["SearchSpace", "TuneError", "load_space", "parse_space"]
