"""Where models, trainers, dataset classes and metrics come from: RecBole and plugins.

A plugin is a Python module. Every class *defined* in it (or, for a package, in its submodules and
exposed by it) is registered under its class name by what it subclasses:

========================================  ==========  ============================================
subclass of                               kind        used when
========================================  ==========  ============================================
``recbole.model.abstract_recommender``    model       ``--model=<Name>``
``.AbstractRecommender`` (with its own
``calculate_loss``)
``recbole.trainer.AbstractTrainer``       trainer     ``trainer: <Name>`` in the config, or its
                                                      name is ``<Model>Trainer``
``recbole.data.dataset.Dataset``          dataset     ``dataset_class: <Name>``, or its name is
                                                      ``<Model>Dataset``
``recbole.evaluator.base_metric``         metric      ``metrics: [<Name>]`` (case-insensitive, as
``.AbstractMetric``                                   RecBole's own metrics)
========================================  ==========  ============================================

A model's defaults come from ``<ClassName>.yaml`` beside the module that defines it.

Plugins are found in three places, all through :meth:`Registry.load`:

1. entry points of installed distributions in the group ``recbole_mm.plugins`` (the object of each
   entry point is a module); recbole_mm's own plugins are registered this way too;
2. folders in the ``RECBOLE_MM_PLUGIN_PATH`` environment variable (``os.pathsep``-separated);
3. folders given as ``plugin_path`` (a config key, or ``--plugin_path`` on the command line).

In a folder, every ``*.py`` file and every sub-folder with an ``__init__.py`` is one plugin module
(names starting with ``_`` are skipped). A name defined twice, by two plugins or by a plugin and
RecBole, is an error naming both sources.
"""

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import pkgutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path

ENTRY_POINT_GROUP = "recbole_mm.plugins"
PLUGIN_PATH_ENV = "RECBOLE_MM_PLUGIN_PATH"
RECBOLE_MODEL_PACKAGES = (
    "general_recommender",
    "context_aware_recommender",
    "sequential_recommender",
    "knowledge_aware_recommender",
    "exlib_recommender",
)
KINDS = ("model", "trainer", "dataset", "metric")

logger = logging.getLogger(__name__)


class PluginError(ValueError):
    """A plugin could not be registered (duplicate name, unreadable folder, broken module)."""


class UnknownModelError(ValueError):
    """No model of that name in RecBole or any plugin; the message lists the available ones."""


@dataclass(frozen=True)
class Entry:
    """One registered object: what it is, and where it came from (for error messages)."""

    obj: object
    source: str

    @property
    def yaml_file(self):
        """``<ClassName>.yaml`` beside the module defining ``obj`` (Path), or None."""
        module = sys.modules.get(self.obj.__module__)
        if module is None or not getattr(module, "__file__", None):
            return None
        path = Path(module.__file__).parent / f"{self.obj.__name__}.yaml"
        return path if path.is_file() else None


def _base_classes():
    from recbole.data.dataset import Dataset
    from recbole.evaluator.base_metric import AbstractMetric
    from recbole.model.abstract_recommender import AbstractRecommender
    from recbole.trainer import AbstractTrainer

    return AbstractRecommender, AbstractTrainer, Dataset, AbstractMetric


def classify(cls):
    """The kind of plugin class ``cls`` is (one of :data:`KINDS`), or None."""
    recommender, trainer, dataset, metric = _base_classes()
    if issubclass(cls, recommender):
        # base classes (GeneralRecommender, a plugin's own abstract base) have no loss of their own
        return "model" if cls.calculate_loss is not recommender.calculate_loss else None
    if issubclass(cls, trainer):
        return "trainer"
    if issubclass(cls, dataset):
        return "dataset"
    if issubclass(cls, metric):
        return "metric"
    return None


def _defined_in(cls, module):
    name = module.__name__
    inside_package = hasattr(module, "__path__") and cls.__module__.startswith(name + ".")
    return cls.__module__ == name or inside_package


def _recbole_model_files():
    """{lower-case model name: RecBole module path} from RecBole's files, without importing them."""
    spec = importlib.util.find_spec("recbole.model")
    files = {}
    for location in spec.submodule_search_locations:
        for package in RECBOLE_MODEL_PACKAGES:
            for info in pkgutil.iter_modules([os.path.join(location, package)]):
                files[info.name] = f"recbole.model.{package}.{info.name}"
    return files


class Registry:
    """Name -> class tables for models, trainers, datasets and metrics, filled from plugins."""

    def __init__(self):
        self._entries = {kind: {} for kind in KINDS}
        self._loaded_entry_points = False
        self._loaded_sources = set()
        self._failures = []
        self._recbole_files = None

    # ------------------------------------------------------------------ loading
    def load(self, plugin_paths=None):
        """Register entry-point plugins (once), ``RECBOLE_MM_PLUGIN_PATH`` and ``plugin_paths``.

        Args:
            plugin_paths (str or list of str or None): plugin folders (or ``.py`` files); a string
                may hold several, separated by ``os.pathsep``.

        Returns:
            Registry: self.
        """
        if not self._loaded_entry_points:
            self._loaded_entry_points = True
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                self._load_entry_point(entry_point)
        for path in _split_paths(os.environ.get(PLUGIN_PATH_ENV)) + _split_paths(plugin_paths):
            self.load_path(path)
        return self

    def _load_entry_point(self, entry_point):
        dist = getattr(entry_point.dist, "name", None) or "an unknown distribution"
        source = f"entry point '{entry_point.name} = {entry_point.value}' of {dist}"
        if source in self._loaded_sources:
            return
        try:
            obj = entry_point.load()
            if isinstance(obj, types.ModuleType):
                self.add_module(obj, source)
            elif inspect.isclass(obj) and classify(obj):
                self.add(obj, source)
            else:
                raise PluginError(
                    f"{source} points to {obj!r}; a recbole_mm plugin entry point must name a module "
                    "(e.g. 'my_plugin = my_package.models') or a model class"
                )
        except PluginError:
            raise  # a duplicate name is ambiguous for every run: never guess which one is meant
        except Exception as error:  # a broken third-party plugin must not stop other runs
            self._failures.append(f"{source}: {type(error).__name__}: {error}")
            logger.warning("Skipping plugin %s: %s", source, error)
            return
        self._loaded_sources.add(source)

    def load_path(self, path):
        """Register every plugin module in folder ``path`` (or the single file ``path``)."""
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise PluginError(
                f"plugin path '{path}' does not exist; fix --plugin_path / plugin_path or "
                f"{PLUGIN_PATH_ENV}"
            )
        if path.is_file():
            candidates = [path]
        else:
            candidates = sorted(
                p
                for p in path.iterdir()
                if not p.name.startswith(("_", "."))
                and (p.suffix == ".py" or (p / "__init__.py").is_file())
            )
        for candidate in candidates:
            source = f"plugin path '{candidate}'"
            if source not in self._loaded_sources:
                self._loaded_sources.add(source)
                self.add_module(_import_file(candidate), source)

    def add_module(self, module, source):
        """Register the plugin classes defined in ``module``."""
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if _defined_in(cls, module) and classify(cls):
                self.add(cls, source)

    def add(self, cls, source):
        """Register one class under its name; a second, different class of that name is an error."""
        kind = classify(cls)
        name = cls.__name__
        table = self._entries[kind]
        if name in table and table[name].obj is not cls:
            raise PluginError(
                f"{kind} '{name}' is defined twice: by {table[name].source} and by {source}; "
                "rename one of the classes or remove one of the plugins"
            )
        if kind == "model":
            self._check_not_recbole(name, source)
        if kind == "metric":
            _register_metric(cls, source)
        table[name] = Entry(cls, source)

    def _recbole_module(self, name):
        """RecBole's module path for model ``name`` (str), or None."""
        if self._recbole_files is None:
            self._recbole_files = _recbole_model_files()
        return self._recbole_files.get(name.lower())

    def _recbole_model(self, name):
        """RecBole's model class ``name``, or None (RecBole's get_model crashes on unknown names)."""
        module = self._recbole_module(name)
        if module is None:
            return None
        try:
            return getattr(importlib.import_module(module), name, None)
        except ImportError as error:  # exlib models need xgboost / lightgbm
            raise UnknownModelError(
                f"RecBole's model '{name}' needs a package that is not installed: {error}"
            ) from error

    def _check_not_recbole(self, name, source):
        module = self._recbole_module(name)
        if module is not None:
            raise PluginError(
                f"model '{name}' is defined twice: by RecBole ({module}) and by {source}; "
                "rename the plugin's class"
            )

    # ------------------------------------------------------------------ lookup
    def entries(self, kind):
        """{name: Entry} of the plugins of one kind (dict)."""
        return dict(self._entries[kind])

    def get_model(self, name):
        """The model class called ``name``, from a plugin or RecBole.

        Raises:
            UnknownModelError: listing every available model.
        """
        entry = self._entries["model"].get(name)
        if entry is not None:
            return entry.obj
        recbole_model = self._recbole_model(name)
        if recbole_model is not None:
            return recbole_model
        lines = [f"Unknown model '{name}'. Available models:"]
        lines.append("  RecBole: " + ", ".join(sorted(self.recbole_models())))
        lines.append("  plugins: " + (", ".join(sorted(self._entries["model"])) or "(none)"))
        if self._failures:
            lines.append("Plugins that failed to load:")
            lines.extend(f"  {failure}" for failure in self._failures)
        lines.append(
            "Install the plugin that provides it, or point --plugin_path / "
            f"{PLUGIN_PATH_ENV} at its folder."
        )
        raise UnknownModelError("\n".join(lines))

    def model_yaml(self, name):
        """The plugin's ``<Name>.yaml`` beside its module (Path), or None."""
        entry = self._entries["model"].get(name)
        return entry.yaml_file if entry is not None else None

    def model_source(self, name):
        """Where model ``name`` comes from (str)."""
        entry = self._entries["model"].get(name)
        return entry.source if entry is not None else "RecBole"

    def recbole_models(self):
        """{name: class} of RecBole's own models (imports RecBole's model packages)."""
        recommender = _base_classes()[0]
        models = {}
        for package in RECBOLE_MODEL_PACKAGES:
            try:
                module = importlib.import_module(f"recbole.model.{package}")
            except ImportError:  # exlib_recommender needs xgboost / lightgbm
                continue
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, recommender) and classify(cls) == "model":
                    models[name] = cls
        return models

    def model_names(self):
        """Every available model name, RecBole's and the plugins' (sorted list)."""
        return sorted(set(self.recbole_models()) | set(self._entries["model"]))

    def _named(self, kind, name, recbole_module, config_key):
        """The plugin or RecBole class ``name`` of ``kind`` chosen by a config key."""
        table = self._entries[kind]
        if name in table:
            return table[name].obj
        module = importlib.import_module(recbole_module)
        if hasattr(module, name):
            return getattr(module, name)
        raise PluginError(
            f"{kind} '{name}' (config key '{config_key}') is neither RecBole's nor a registered "
            f"plugin {kind} ({', '.join(sorted(table)) or 'none registered'})"
        )

    def get_trainer(self, model_type, model_name, trainer_name=None):
        """The trainer class for a model: ``trainer_name``, ``<Model>Trainer``, or RecBole's."""
        from recbole.utils import get_trainer

        if trainer_name:
            return self._named("trainer", trainer_name, "recbole.trainer", "trainer")
        entry = self._entries["trainer"].get(f"{model_name}Trainer")
        return entry.obj if entry is not None else get_trainer(model_type, model_name)

    def get_dataset_class(self, model_name, dataset_class=None):
        """A plugin dataset class for the model (by config key or ``<Model>Dataset``), or None."""
        if dataset_class:
            return self._named("dataset", dataset_class, "recbole.data.dataset", "dataset_class")
        entry = self._entries["dataset"].get(f"{model_name}Dataset")
        return entry.obj if entry is not None else None


def _split_paths(paths):
    if not paths:
        return []
    if isinstance(paths, (str, os.PathLike)):
        paths = str(paths).split(os.pathsep)
    return [str(p) for p in paths if str(p).strip()]


def _import_file(path):
    """Import a plugin file or package folder under a unique, stable module name."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"recbole_mm_plugin_{digest}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise PluginError(f"plugin '{path}' failed to import: {type(error).__name__}: {error}")
    return module


def _register_metric(cls, source):
    """Add a plugin metric to RecBole's metric tables (RecBole only introspects its own module)."""
    from recbole.evaluator import register

    name = cls.__name__.lower()
    for attribute in ("metric_need", "metric_type"):
        if not hasattr(cls, attribute):
            raise PluginError(f"metric {cls.__name__} from {source} has no '{attribute}' attribute")
    if name in register.metrics_dict and register.metrics_dict[name] is not cls:
        raise PluginError(
            f"metric '{cls.__name__}' is defined twice: by "
            f"{register.metrics_dict[name].__module__} and by {source}"
        )
    register.metrics_dict[name] = cls
    register.metric_information[name] = cls.metric_need
    register.metric_types[name] = cls.metric_type
    if cls.smaller and name not in register.smaller_metrics:
        register.smaller_metrics.append(name)


registry = Registry()
