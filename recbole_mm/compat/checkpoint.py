"""RecBole checkpoints under torch >= 2.6, without trusting the file.

RecBole pickles its whole ``Config`` into every checkpoint, with pickle protocol 4, and torch >= 2.6
loads with ``weights_only=True``, whose unpickler refuses both the ``Config`` and protocol 4 itself.
So ``evaluate(load_best_model=True)``, ``resume_checkpoint`` and ``load_data_and_model`` all fail.
Turning ``weights_only`` off would let any downloaded checkpoint run code. Instead, checkpoints are
read by an unpickler that resolves only an allow-list, exactly what a RecBole checkpoint holds:

- what torch's own ``weights_only`` unpickler allows (tensors, storages, dtypes, ``OrderedDict``...);
- the ``Config`` (RecBole's or ours), read as :class:`CheckpointConfig`, a plain attribute bag that
  cannot be called: a pickle that tries ``Config(...)`` (whose ``__init__`` ``eval``-s strings) is
  refused;
- RecBole's enums (``ModelType``, ``InputType``, ...), rebuilt from their values;
- class references RecBole 1.2.1 itself wrote into ``Config`` (the model class, yaml's
  ``FullLoader``), read as :class:`UnresolvedClass`, which cannot be instantiated; the model class is
  looked up again by name by whoever restores the config.

Any other global (``os.system``, ``builtins.eval``, ...) raises ``pickle.UnpicklingError``.
Checkpoints written after ``import recbole_mm`` no longer contain class references: ``Config``
pickles without ``model_class`` and ``yaml_loader`` (see :func:`config_getstate`), and a model's
``other_parameter`` without the model's own submodules (see :func:`other_parameter`).
"""

import importlib
import pickle
import types

import numpy
import scipy.sparse
import torch
from torch import _weights_only_unpickler

CONFIG_NAMES = ("recbole.config.configurator.Config", "recbole_mm.config.Config")
_CLASS_ATTRS = ("model_class", "yaml_loader")
_YAML_LOADER = "yaml.loader.FullLoader"


class CheckpointConfig:
    """A checkpoint's ``Config``: its attributes only. ``cfg["key"]`` reads the final config."""

    def __init__(self, *args, **kwargs):
        raise pickle.UnpicklingError(
            "this checkpoint tries to call Config(...) while loading; a RecBole checkpoint never "
            "does that, so the file was refused (it may have been tampered with)"
        )

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __getitem__(self, key):
        return self.__dict__.get("final_config_dict", {}).get(key)

    def __contains__(self, key):
        return key in self.__dict__.get("final_config_dict", {})

    def state(self):
        """The pickled ``Config.__dict__`` without class references (dict)."""
        return {k: v for k, v in self.__dict__.items() if k not in _CLASS_ATTRS}


class UnresolvedClass:
    """Stands for a class a RecBole 1.2.1 checkpoint names; it cannot be instantiated."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError(
            "this checkpoint tries to instantiate a class while loading; refused "
            "(the file may have been tampered with)"
        )


def _enum_classes():
    from recbole.utils import enum_type

    return [
        obj
        for obj in vars(enum_type).values()
        if isinstance(obj, type) and obj.__module__ == enum_type.__name__
    ]


def _recbole_model_class(full_name):
    """The RecBole model class ``full_name`` names (imports only ``recbole.model.*``), or None."""
    module_name, _, class_name = full_name.rpartition(".")
    if not module_name.startswith("recbole.model."):
        return None
    from recbole.model.abstract_recommender import AbstractRecommender

    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, AbstractRecommender) else None


def _numpy_scipy_globals():
    """numpy scalars, arrays and dtypes, and SciPy sparse matrices.

    RecBole stores numpy floats in configs and scores, and its traditional models (ItemKNN, EASE,
    SLIMElastic, AsymKNN...) keep numpy arrays or SciPy sparse matrices in ``other_parameter``.
    All of them unpickle by ``__new__`` plus setting their state: nothing user-defined runs.
    """
    scalar = numpy.float64(0).__reduce__()[0]  # numpy.core.multiarray.scalar, renamed in numpy 2
    reconstruct = numpy.zeros(1).__reduce__()[0]  # numpy.core.multiarray._reconstruct
    found = {}
    for core in ("core", "_core"):
        found[f"numpy.{core}.multiarray.scalar"] = scalar
        found[f"numpy.{core}.multiarray._reconstruct"] = reconstruct
    found["numpy.dtype"] = numpy.dtype
    found["numpy.ndarray"] = numpy.ndarray
    found["numpy.matrix"] = numpy.matrix  # EASE keeps its item-item matrix as numpy.matrix
    for name in dir(scipy.sparse):
        cls = getattr(scipy.sparse, name)
        if isinstance(cls, type) and issubclass(cls, scipy.sparse.spmatrix | scipy.sparse.sparray):
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    dtypes = getattr(numpy, "dtypes", None)
    for name, cls in vars(dtypes).items() if dtypes else ():
        if isinstance(cls, type) and issubclass(cls, numpy.dtype):
            found[f"numpy.dtypes.{name}"] = cls
    return found


def allowed_globals(known_classes=()):
    """{"module.name": object} that a checkpoint may reference (dict)."""
    allowed = dict(_weights_only_unpickler._get_allowed_globals())
    allowed.update({name: CheckpointConfig for name in CONFIG_NAMES})
    allowed.update({f"{e.__module__}.{e.__qualname__}": e for e in _enum_classes()})
    allowed.update(_numpy_scipy_globals())
    allowed[_YAML_LOADER] = UnresolvedClass
    allowed.update({f"{c.__module__}.{c.__qualname__}": UnresolvedClass for c in known_classes})
    return allowed


def _load_build(self):
    # BUILD sets state on the object below it; on a class that would rewrite allow-listed classes
    if isinstance(self.stack[-2], type):
        raise pickle.UnpicklingError("checkpoint tries to set attributes of a class: refused")
    pickle._Unpickler.load_build(self)


class _RestrictedUnpickler(pickle._Unpickler):
    """Resolves only the globals in ``self.allowed`` and builds no classes; refuses the rest.

    Pure-Python pickle (``pickle._Unpickler``) so that ``BUILD`` can be checked; a checkpoint's
    pickle is small (tensor data lives in separate records), so speed does not matter here.
    """

    allowed = {}
    dispatch = {**pickle._Unpickler.dispatch, pickle.BUILD[0]: _load_build}

    def find_class(self, module, name):
        full_name = f"{module}.{name}"
        if full_name in self.allowed:
            return self.allowed[full_name]
        if _recbole_model_class(full_name) is not None:
            return UnresolvedClass
        raise pickle.UnpicklingError(
            f"checkpoint refers to '{full_name}', which no RecBole checkpoint contains: refused "
            "(the file may have been tampered with; load it only if you trust its source and "
            "know why it holds that)"
        )


def _restricted_pickle_module(allowed):
    """A module with pickle's interface whose Unpickler resolves only ``allowed``."""
    module = types.ModuleType("recbole_mm_restricted_pickle")
    module.Unpickler = type("Unpickler", (_RestrictedUnpickler,), {"allowed": allowed})
    module.load = lambda f, **kwargs: module.Unpickler(f, **kwargs).load()
    module.UnpicklingError = pickle.UnpicklingError
    return module


def config_getstate(self):
    """``Config.__getstate__``: everything but the class references (rebuilt on load)."""
    return {k: v for k, v in self.__dict__.items() if k not in _CLASS_ATTRS}


def other_parameter(self):
    """``AbstractRecommender.other_parameter`` without the model's submodules (dict).

    DIN, DIEN, FDSA, GRU4RecF and SASRecF list their feature embedding layer there, an
    ``nn.Module`` that RecBole would pickle whole, classes and all (the allow-list refuses it).
    Its weights are in the ``state_dict`` already, which restores them on loading.
    """
    names = getattr(self, "other_parameter_name", ())
    return {name: getattr(self, name) for name in names if name not in self._modules}


def config_setstate(self, state):
    """``Config.__setstate__`` for plain pickles (e.g. saved datasets): rebuild class references."""
    from recbole.utils import get_model

    self.__dict__.update(state)
    self.yaml_loader = self._build_yaml_loader()
    try:
        self.model_class = get_model(self.model)
    except (ValueError, AttributeError, ImportError):
        self.model_class = None  # a plugin model: recbole_mm.config.Config resolves it


def load(f, map_location=None, known_classes=(), **_ignored):
    """Load a RecBole checkpoint, resolving only :func:`allowed_globals`.

    Args:
        f (str or file): the ``.pth`` checkpoint.
        map_location: as for ``torch.load``.
        known_classes (iterable of type): plugin model classes the checkpoint may name (read as
            :class:`UnresolvedClass`); RecBole's own model classes are always recognised.

    Returns:
        dict: the checkpoint; ``checkpoint["config"]`` is a :class:`CheckpointConfig`.

    Raises:
        pickle.UnpicklingError: the file references anything outside the allow-list.
    """
    # weights_only=False only because torch's weights-only unpickler cannot read RecBole's
    # protocol-4 pickles; the restricted pickle module below is at least as strict.
    return torch.load(
        f,
        map_location=map_location,
        weights_only=False,
        pickle_module=_restricted_pickle_module(allowed_globals(known_classes)),
    )


class _TorchForRecBoleTrainer:
    """Stands in for ``torch`` inside ``recbole.trainer.trainer``: ``load`` is :func:`load`."""

    load = staticmethod(load)

    def __getattr__(self, name):
        return getattr(torch, name)


def apply():
    from recbole.config.configurator import Config
    from recbole.model.abstract_recommender import AbstractRecommender

    import recbole.trainer.trainer as trainer_module

    if not isinstance(trainer_module.torch, _TorchForRecBoleTrainer):
        trainer_module.torch = _TorchForRecBoleTrainer()
    Config.__getstate__ = config_getstate
    Config.__setstate__ = config_setstate
    AbstractRecommender.other_parameter = other_parameter
