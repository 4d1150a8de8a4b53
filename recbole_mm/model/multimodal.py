"""``MultimodalRecommender``: the base of models that use item features.

A model declares the feature sets it needs in the config key ``modalities`` (names in the
dataset's feature store, see :mod:`recbole_mm.data.features`, or ``field:<name>`` for a RecBole
``float_seq`` field of the ``.item`` file). The base class loads each one once, aligned to RecBole's
internal item ids, and keeps it on the model's device; models never read files.
"""

from pathlib import Path

import torch
from recbole.model.abstract_recommender import GeneralRecommender

from recbole_mm.data.features import FeatureError, FeatureStore, aligned_field

FIELD_PREFIX = "field:"


def feature_store(config):
    """The run's feature store: ``feature_path``, else ``<data_path>/features``."""
    return FeatureStore(Path(config["feature_path"] or Path(config["data_path"]) / "features").expanduser())


def load_item_features(config, dataset):
    """{name: (features [n_items, dim] float, mask [n_items] bool)} for ``config["modalities"]``.

    The store is ``config["feature_path"]`` if set, else ``<data_path>/features`` (RecBole's
    ``data_path`` already ends with the dataset's folder). ``config["feature_fill"]`` (zeros or
    mean) fills the rows of items without a feature; the mask says which rows are real. A feature
    set missing from the store but described in ``config["feature_recipes"]`` (a dataset YAML's
    recipe, e.g. the bundled ml-100k's text features) is extracted once, on first use.

    Raises:
        FeatureError: no modalities configured, or one that is not in the store (naming the files
            looked for).
    """
    names = config["modalities"]
    names = names.split(",") if isinstance(names, str) else list(names or [])  # "a,b" on the CLI
    store = feature_store(config)
    if not names:
        available = ",".join(sorted(set(store.names()) | set(config["feature_recipes"] or {})))
        raise FeatureError(
            f"{config['model']} needs item features: set 'modalities' to feature sets of "
            f"{config['dataset']} ("
            + (f"these: --modalities={available}" if available else f"{store.root} has none")
            + "), or create them with `recbole-mm extract`"
        )
    recipes = config["feature_recipes"] or {}
    fill = config["feature_fill"] or "zeros"
    iid = dataset.iid_field
    loaded = {}
    for name in names:
        if name.startswith(FIELD_PREFIX):
            loaded[name] = aligned_field(dataset, name[len(FIELD_PREFIX):], fill)
        else:
            if name not in store.manifest() and name in recipes:
                # dataset_tools is imported only here, when a dataset needs a feature set made
                from recbole_mm.dataset_tools.extract import build_from_recipe

                build_from_recipe(store, name, recipes[name], Path(config["data_path"]))
            loaded[name] = store.aligned(name, dataset.field2token_id[iid], dataset.item_num, fill)
    return loaded


class MultimodalRecommender(GeneralRecommender):
    """A general recommender with item features.

    After ``__init__``, ``self.item_features[name]`` is a float tensor [n_items, dim] and
    ``self.item_feature_masks[name]`` a bool tensor [n_items] (True: the item has that feature;
    row 0 is padding) for every name in ``config["modalities"]``, registered as non-persistent
    buffers (they follow ``.to(device)`` and stay out of checkpoints).

    ``self.cold_item_mask`` (bool [n_items], non-persistent buffer) marks the items held out by the
    item cold-start protocol (:mod:`recbole_mm.evaluation.cold_start`, config ``cold_start_items``;
    all False otherwise): they have no training interaction, and a model that sets the class
    attribute ``content_only_cold_items = True`` promises to score them from their features alone,
    no ID-based item parameter entering their scores. The protocol refuses models that do not.
    """

    content_only_cold_items = False

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.modality_names = []
        for index, (name, (features, mask)) in enumerate(load_item_features(config, dataset).items()):
            self.register_buffer(f"_feature_{index}", features, persistent=False)
            self.register_buffer(f"_feature_mask_{index}", mask, persistent=False)
            self.modality_names.append(name)
        cold_start = getattr(dataset, "cold_start", None)  # set by the cold-start data preparation
        cold = torch.zeros(self.n_items, dtype=torch.bool) if cold_start is None else cold_start.mask(self.n_items)
        self.register_buffer("cold_item_mask", cold, persistent=False)

    @property
    def item_features(self):
        """{name: [n_items, dim] float tensor}."""
        return {n: getattr(self, f"_feature_{i}") for i, n in enumerate(self.modality_names)}

    @property
    def item_feature_masks(self):
        """{name: [n_items] bool tensor}."""
        return {n: getattr(self, f"_feature_mask_{i}") for i, n in enumerate(self.modality_names)}
