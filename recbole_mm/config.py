"""``Config``: RecBole's configurator, aware of plugins, with recbole_mm's property layers.

Layers, later ones winning:

1. RecBole's ``overall.yaml``, then recbole_mm's ``properties/overall.yaml``;
2. the model's YAML: RecBole's ``properties/model/<Model>.yaml``, the plugin's ``<Model>.yaml``
   beside its module, then recbole_mm's ``properties/model/<Model>.yaml``;
3. the dataset's YAML: RecBole's ``properties/dataset/<dataset>.yaml``, then recbole_mm's;
4. RecBole's defaults of the model's type (``properties/quick_start_config``: context-aware,
   sequential, knowledge-based models; e.g. DeepFM's AUC/LogLoss on labeled data), as in RecBole;
5. the user's config files, then ``config_dict``, then command-line arguments.

Unlike RecBole's ``Config``, this one never reads ``sys.argv``: command-line arguments reach it only
through ``cmd_args``, given by our entry points (pytest's or Ray's arguments cannot leak in).
"""

import importlib.resources
import os

import recbole
import torch
import yaml
from recbole.config import Config as RecBoleConfig

from recbole_mm.registry import registry

_RECBOLE_PROPERTIES = os.path.join(os.path.dirname(recbole.__file__), "properties")
_RECBOLE_TYPE_DEFAULTS = os.path.realpath(os.path.join(_RECBOLE_PROPERTIES, "quick_start_config"))


def cutoffs(value):
    """``topk`` or ``search_topk`` as a list (RecBole accepts one int too)."""
    return [value] if isinstance(value, int) else list(value or [])


def properties_dir():
    """recbole_mm's ``properties/`` folder (a Traversable path)."""
    return importlib.resources.files("recbole_mm.properties")


class ConfigError(ValueError):
    """A command-line argument or config file recbole_mm cannot read."""


def parse_cmd_args(cmd_args):
    """Turn ``["--key=value", "--key", "value", ...]`` into ``{key: "value"}`` (strings).

    Raises:
        ConfigError: for an argument that is not ``--key=value`` or ``--key value``.
    """
    parsed = {}
    args = list(cmd_args or [])
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(
                f"command-line argument '{arg}' is not of the form --key=value (or --key value)"
            )
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = arg[2:], args[i + 1]
            i += 2
        else:
            raise ConfigError(f"command-line argument '{arg}' has no value; write {arg}=VALUE")
        if key in parsed and parsed[key] != value:
            raise ConfigError(f"command-line argument --{key} is given twice with different values")
        parsed[key] = value
    return parsed


class Config(RecBoleConfig):
    """RecBole's ``Config`` with plugin models and recbole_mm's layers (see the module docstring).

    Args:
        model (str or type or None): model name (RecBole's or a plugin's) or class.
        dataset (str or None): dataset name.
        config_file_list (list of str or None): YAML files, later ones winning.
        config_dict (dict or None): parameters, winning over the files.
        cmd_args (list of str or None): command-line arguments ``--key=value``, winning over all.
    """

    def __init__(
        self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None
    ):
        self._cmd_args = list(cmd_args or [])
        self._internal_files = []  # every internal YAML layer, in the order it was merged
        super().__init__(model, dataset, config_file_list, config_dict)
        del self._cmd_args, self._internal_files
        self._check_valid_metric()

    def _check_valid_metric(self):
        """Fail now, not after the first epoch, if ``valid_metric`` is not computed."""
        valid_metric = str(self["valid_metric"] or "")
        metrics = self["metrics"]
        metrics = [metrics] if isinstance(metrics, str) else list(metrics or [])
        # search metrics (search_ndcg@10, ...) of models with a search head, and their mean with
        # the recommendation NDCG (multitask_ndcg@10)
        search_metrics = [m.lower() for m in self["search_metrics"] or []]
        metrics += [f"search_{m}" for m in search_metrics]
        if "ndcg" in search_metrics and "ndcg" in {m.lower() for m in metrics}:
            metrics.append("multitask_ndcg")
        if valid_metric and valid_metric.split("@")[0].lower() not in {m.lower() for m in metrics}:
            raise ConfigError(
                f"valid_metric '{valid_metric}' is not among metrics {metrics}: add it to 'metrics' "
                "or choose another valid_metric"
            )
        name, _, k = valid_metric.partition("@")
        if not k:
            return
        # the cut-offs valid_metric's value is computed at: search metrics at search_topk,
        # multitask_ndcg at both
        keys = {"search": ["search_topk"], "multitask": ["topk", "search_topk"]}
        for key in keys.get(name.lower().split("_")[0], ["topk"]):
            computed = cutoffs(self[key])
            if not k.isdigit() or int(k) not in computed:
                raise ConfigError(
                    f"valid_metric '{valid_metric}' needs the cut-off {k}, but {key} is "
                    f"{computed}: add {k} to {key} or choose a valid_metric at one of {computed}"
                )

    def _load_cmd_line(self):
        return self._convert_config_dict(parse_cmd_args(self._cmd_args))

    def _merge_external_config_dict(self):
        super()._merge_external_config_dict()
        registry.load(self.external_config_dict.get("plugin_path"))

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise ConfigError(
                    "no model given: pass --model=NAME, model= in Python, or 'model:' in a config file"
                )
        if isinstance(model, str):
            model = registry.get_model(model)
        return super()._get_model_and_dataset(model, dataset)

    def _update_internal_config_dict(self, file):
        self._internal_files.append(os.path.realpath(str(file)))
        return super()._update_internal_config_dict(file)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        # RecBole merges its model type's defaults last; they must stay last over our layers too
        type_defaults = [
            path
            for path in self._internal_files
            if os.path.dirname(path) == _RECBOLE_TYPE_DEFAULTS
        ]
        ours = properties_dir()
        self._update_layer(ours / "overall.yaml")
        self._update_layer(os.path.join(_RECBOLE_PROPERTIES, "model", f"{model}.yaml"))
        self._update_layer(registry.model_yaml(model))
        self._update_layer(ours / "model" / f"{model}.yaml")
        for dataset_file in (
            os.path.join(_RECBOLE_PROPERTIES, "dataset", f"{dataset}.yaml"),
            ours / "dataset" / f"{dataset}.yaml",
        ):
            loaded = self._update_layer(dataset_file)
            self.parameters["Dataset"] += [k for k in loaded if k not in self.parameters["Dataset"]]
        for path in type_defaults:
            self._update_layer(path)

    def _update_layer(self, path):
        """Merge one YAML layer into the internal config if the file exists; returns its dict."""
        if path is None or not os.path.isfile(str(path)):
            return {}
        try:
            return self._update_internal_config_dict(str(path)) or {}
        except (yaml.YAMLError, ValueError, TypeError) as error:
            raise ConfigError(f"cannot read config layer {path}: {error}") from error

    def __setstate__(self, state):
        super().__setstate__(state)
        registry.load(self.final_config_dict.get("plugin_path"))
        self.model_class = registry.get_model(self.model)

    @classmethod
    def from_checkpoint(cls, checkpoint_config):
        """Rebuild a Config from the ``CheckpointConfig`` a safely loaded checkpoint holds."""
        config = cls.__new__(cls)
        config.__setstate__(checkpoint_config.state())
        device = torch.device(config["device"] or "cpu")
        if device.type == "cuda" and not torch.cuda.is_available():
            config.final_config_dict["device"] = torch.device("cpu")  # trained on a GPU, loaded here
        return config
