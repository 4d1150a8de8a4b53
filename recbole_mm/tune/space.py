"""Search spaces as data: a YAML file of ``key: {kind: arguments}`` turned into Ray Tune domains.

A search-space file maps RecBole config keys to one sampling rule each::

    learning_rate: {loguniform: [1.0e-4, 1.0e-2]}   # (float) ...
    n_layers: {grid: [1, 2, 3]}                     # (int) ...

Kinds (the arguments are a YAML list):

- ``choice: [v1, v2, ...]``: one of the values, uniformly (values may be lists, e.g. layer sizes);
- ``grid: [v1, v2, ...]``: the values in order under ``--search grid`` (every combination of all
  ``grid`` keys, the other keys sampled); a ``choice`` under the other searches;
- ``uniform: [low, high]``: a float uniformly in [low, high];
- ``loguniform: [low, high]``: a float uniformly in log space (0 < low < high);
- ``quniform: [low, high, q]``: uniform in [low, high] rounded to a multiple of ``q`` (``low`` and
  ``high`` are multiples of ``q``); integers (Ray's ``qrandint``, ``high`` included) when ``low``,
  ``high`` and ``q`` are all integers.

Values that are lists or mappings travel through Ray (and Optuna, which only takes scalars) as
their YAML text and are decoded again before they reach RecBole (:meth:`SearchSpace.decode`).
Numbers like ``1e-4`` are read as floats, as RecBole reads its own config files.
"""

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

KINDS = ("choice", "grid", "uniform", "loguniform", "quniform")

# Keys the tuner sets for every trial: a search space may not sample them.
RESERVED = {
    "model": "it is --model",
    "dataset": "it is --dataset",
    "data_path": "it is --data-path",
    "epochs": "the budget is --max-epochs",
    "seed": "it is --seed (every trial and model gets the same one)",
    "checkpoint_dir": "each trial gets its own folder inside its trial directory",
    "gpu_id": "a trial uses the GPU Ray assigns to it (--gpus-per-trial)",
    "use_gpu": "a trial uses the GPU Ray assigns to it (--gpus-per-trial)",
    "device": "a trial uses the GPU Ray assigns to it (--gpus-per-trial)",
    "valid_metric": "trials are compared on one metric: set it in a --config-files YAML",
    "valid_metric_bigger": "trials are compared on one metric: set it in a --config-files YAML",
}


class TuneError(ValueError):
    """A search that cannot run as asked; the message says what to change."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``1e-4`` (no dot) as a float, as RecBole does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value):
    return value is None or isinstance(value, (bool, int, float, str))


def _plain(value):
    """``value`` with numpy scalars (as Ray samples them) turned into Python ones."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


@dataclass(frozen=True)
class Parameter:
    """One key of a search space.

    Attributes:
        name (str): the RecBole config key.
        kind (str): one of :data:`KINDS`.
        args (tuple): the values (choice, grid) or ``(low, high)`` / ``(low, high, q)``.
        line (int): its line in the file (1-based), for error messages.
    """

    name: str
    kind: str
    args: tuple
    line: int

    @property
    def encoded(self):
        """Whether the values travel as YAML text (some value is a list or a mapping)."""
        return self.kind in ("choice", "grid") and not all(_is_scalar(v) for v in self.args)

    def values(self):
        """The choice/grid values as Ray and Optuna get them (list)."""
        if self.encoded:
            return [yaml.safe_dump(v, default_flow_style=True).strip() for v in self.args]
        return list(self.args)

    def domain(self):
        """This parameter as a Ray Tune domain (``grid`` becomes a ``choice``)."""
        from ray import tune  # Ray only where a search runs: the CLI starts without it

        if self.kind in ("choice", "grid"):
            return tune.choice(self.values())
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "loguniform":
            return tune.loguniform(*self.args)
        low, high, q = self.args
        if all(isinstance(v, int) for v in self.args):
            return tune.qrandint(low, high, q)
        return tune.quniform(low, high, q)

    def decode(self, value):
        """A sampled ``value`` as RecBole gets it (lists back from their YAML text)."""
        value = _plain(value)
        if self.encoded:
            return yaml.load(value, Loader=_Loader)
        if self.kind == "quniform" and isinstance(value, float):
            return round(value, 10)  # Ray's q * round(x / q) leaves 0.30000000000000004
        return value

    def describe(self):
        """``{kind: [args]}``, as written in the file (dict)."""
        return {self.kind: list(self.args)}


class SearchSpace:
    """A parsed search-space file.

    Args:
        path (str or Path): the file (kept for messages).
        parameters (dict): {name: :class:`Parameter`}, in file order.
    """

    def __init__(self, path, parameters):
        self.path = Path(path)
        self.parameters = dict(parameters)

    def __repr__(self):
        return f"SearchSpace({str(self.path)!r}, {list(self.parameters)})"

    def tune_space(self):
        """{name: Ray Tune domain}: the ``param_space`` of a Tuner."""
        return {name: parameter.domain() for name, parameter in self.parameters.items()}

    def grid_points(self, num_samples):
        """The first ``num_samples`` combinations of the ``grid`` keys, in file order.

        Returns:
            list of dict: {grid key: value as Ray gets it}; the other keys are sampled by Ray.

        Raises:
            TuneError: the space has no ``grid`` key, or fewer combinations than ``num_samples``
                (every model gets ``num_samples`` trials: repeating a grid point would only
                repeat a result).
        """
        grid = [p for p in self.parameters.values() if p.kind == "grid"]
        if not grid:
            raise TuneError(
                f"{self.path}: --search grid needs at least one 'grid:' key; change a 'choice:' "
                "to 'grid:' or use --search random"
            )
        combinations = list(itertools.product(*(p.values() for p in grid)))
        if len(combinations) < num_samples:
            raise TuneError(
                f"{self.path}: its grid has {len(combinations)} combinations but --num-samples is "
                f"{num_samples}; lower --num-samples to at most {len(combinations)} (every model "
                "gets the same number of trials) or add grid values"
            )
        return [dict(zip((p.name for p in grid), c)) for c in combinations[:num_samples]]

    def decode(self, sampled):
        """{name: value} of one trial, as RecBole gets it (only this space's keys)."""
        return {
            name: parameter.decode(sampled[name])
            for name, parameter in self.parameters.items()
            if name in sampled
        }

    def describe(self):
        """{name: {kind: [args]}} (dict): the space as data, e.g. to compare two runs."""
        return {name: parameter.describe() for name, parameter in self.parameters.items()}

    def check_keys(self, known, model):
        """Fail on keys that are not config keys of ``model``.

        Args:
            known (Iterable of str): the model's config keys (RecBole's, the model's and ours).
            model (str): the model's name, for the message.

        Raises:
            TuneError: naming the file, the line and the key.
        """
        known = set(known)
        for parameter in self.parameters.values():
            if parameter.name not in known:
                raise TuneError(
                    f"{self.path}, line {parameter.line}: '{parameter.name}' is not a config key "
                    f"of {model} (none of RecBole's, the model's or recbole_mm's YAML files sets "
                    "it); check its spelling, or remove it from the search space"
                )


def _check_arguments(where, kind, args):
    """Validate the arguments of one rule; ``where`` prefixes the message."""
    if not isinstance(args, list):
        raise TuneError(f"{where}: '{kind}' takes a list, e.g. {kind}: {_EXAMPLES[kind]}")
    if kind in ("choice", "grid"):
        if not args:
            raise TuneError(f"{where}: '{kind}' needs at least one value")
        seen = []
        for value in args:
            if value in seen:
                raise TuneError(f"{where}: '{kind}' lists {value!r} twice; list each value once")
            seen.append(value)
        return
    size = 3 if kind == "quniform" else 2
    if len(args) != size or not all(_is_number(v) for v in args):
        raise TuneError(
            f"{where}: '{kind}' takes {size} numbers, e.g. {kind}: {_EXAMPLES[kind]} "
            f"(got {args!r}; write 1.0e-4 or 0.0001 for small numbers)"
        )
    low, high = args[0], args[1]
    if not low < high:
        raise TuneError(f"{where}: '{kind}' needs low < high (got low={low}, high={high})")
    if kind == "loguniform" and low <= 0:
        raise TuneError(f"{where}: 'loguniform' needs 0 < low (got {low}); use 'uniform' to include 0")
    if kind == "quniform":
        q = args[2]
        if not 0 < q <= high - low:
            raise TuneError(f"{where}: 'quniform' needs 0 < q <= high - low (got q={q} for [{low}, {high}])")
        if not all(math.isclose(bound / q, round(bound / q)) for bound in (low, high)):
            raise TuneError(
                f"{where}: 'quniform' needs low and high to be multiples of q (got [{low}, {high}] "
                f"with q={q}), e.g. quniform: [0.2, 0.8, 0.2]"
            )


_EXAMPLES = {
    "choice": "[64, 128]",
    "grid": "[1, 2, 3]",
    "uniform": "[0.0, 0.5]",
    "loguniform": "[1.0e-4, 1.0e-2]",
    "quniform": "[0.1, 0.9, 0.1]",
}


def parse_space(text, path="<string>"):
    """Parse search-space YAML ``text``; ``path`` names it in error messages.

    Returns:
        SearchSpace

    Raises:
        TuneError: naming the file, the line and the key, and what to write instead.
    """
    loader = _Loader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as error:
            raise TuneError(f"{path}: not valid YAML: {error}") from error
        if root is None or (isinstance(root, yaml.MappingNode) and not root.value):
            raise TuneError(
                f"{path}: the search space is empty; add lines like "
                "'learning_rate: {loguniform: [1.0e-4, 1.0e-2]}'"
            )
        if not isinstance(root, yaml.MappingNode):
            raise TuneError(f"{path}: a search space is a mapping of config keys to sampling rules")
        parameters = {}
        for key_node, value_node in root.value:
            line = key_node.start_mark.line + 1
            name = loader.construct_object(key_node, deep=True)
            value = loader.construct_object(value_node, deep=True)
            where = f"{path}, line {line}, key '{name}'"
            if not isinstance(name, str):
                raise TuneError(f"{path}, line {line}: the key {name!r} is not a config key name")
            if name in parameters:
                raise TuneError(f"{where}: the key is given twice (also on line {parameters[name].line})")
            if name in RESERVED:
                raise TuneError(f"{where}: the tuner sets '{name}' itself ({RESERVED[name]}); remove it")
            if not isinstance(value, dict) or len(value) != 1:
                raise TuneError(
                    f"{where}: write one sampling rule, e.g. {name}: {{choice: [a, b]}}, with one of "
                    f"{', '.join(KINDS)} (fixed values belong in a --config-files YAML)"
                )
            (kind, args), = value.items()
            if kind not in KINDS:
                raise TuneError(f"{where}: unknown rule '{kind}'; use one of {', '.join(KINDS)}")
            _check_arguments(where, kind, args)
            parameters[name] = Parameter(name, kind, tuple(args), line)
    finally:
        loader.dispose()
    return SearchSpace(path, parameters)


def load_space(path):
    """Read the search-space file ``path`` (see :func:`parse_space`).

    Raises:
        TuneError: the file is missing or not a valid search space.
    """
    path = Path(path)
    if not path.is_file():
        raise TuneError(
            f"search space file {path} not found: pass --space FILE, or write one like those in "
            "recbole_mm's properties/tune/ folder"
        )
    return parse_space(path.read_text(encoding="utf-8"), path)
