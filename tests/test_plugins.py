"""The plugin registry: entry points, plugin folders, config layering, duplicates, unknown names."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from recbole.config import Config as RecBoleConfig

from recbole_mm import Config, create_dataset, get_trainer, load_data_and_model, run
from recbole_mm.registry import PLUGIN_PATH_ENV, PluginError, Registry, UnknownModelError, registry

from conftest import REPO

EXAMPLE = REPO / "examples" / "plugin_example"
BIN = Path(sys.executable).parent

MF_MODEL = '''
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn


class {name}(GeneralRecommender):
    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.user = nn.Embedding(self.n_users, config["embedding_size"])
        self.item = nn.Embedding(self.n_items, config["embedding_size"])

    def calculate_loss(self, interaction):
        u = self.user(interaction[self.USER_ID])
        pos = (u * self.item(interaction[self.ITEM_ID])).sum(-1)
        neg = (u * self.item(interaction[self.NEG_ITEM_ID])).sum(-1)
        return -F.logsigmoid(pos - neg).mean()

    def predict(self, interaction):
        return (self.user(interaction[self.USER_ID]) * self.item(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction):
        return (self.user(interaction[self.USER_ID]) @ self.item.weight.T).view(-1)
'''


def write_plugin(folder, name, extra="", yaml=None, filename=None):
    """Write plugin module ``<filename or name.lower()>.py`` defining model ``name`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{filename or name.lower()}.py").write_text(MF_MODEL.format(name=name) + extra)
    if yaml is not None:
        (folder / f"{name}.yaml").write_text(yaml)
    return folder


# ---------------------------------------------------------------- a third-party distribution
@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The worked example, copied to a temporary folder and pip-installed into its own target."""
    tmp = tmp_path_factory.mktemp("dist")
    source = shutil.copytree(EXAMPLE, tmp / "plugin_example")
    target = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    return target


def _env_with(site):
    return dict(os.environ, PYTHONPATH=str(site))


def test_installed_distribution_runs_through_run_recbole(installed_example, small_data, workdir):
    done = subprocess.run(
        [str(BIN / "run_recbole"), "--model=BiasedMF", "--dataset=ml-small", "--epochs=1",
         f"--data_path={small_data}", "--state=WARNING", "--use_gpu=False"],
        cwd=workdir, env=_env_with(installed_example), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "BiasedMF on ml-small" in done.stdout
    record_path = done.stdout.strip().splitlines()[-1].split("record: ")[1]
    with open(workdir / record_path, encoding="utf-8") as f:
        record = json.load(f)
    assert record["config"]["reg_weight"] == 1e-05  # from BiasedMF.yaml beside the module
    assert record["test_result"]["recall@10"] >= 0


def test_installed_distribution_is_listed_with_its_source(installed_example, workdir):
    done = subprocess.run(
        [sys.executable, "-m", "recbole_mm", "models"],
        cwd=workdir, env=_env_with(installed_example), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("BiasedMF"))
    assert "recbole-mm-example-plugin" in line and "biased_mf" in line
    assert any(line.startswith("LightGCN") for line in done.stdout.splitlines())


def test_unknown_model_lists_every_model(installed_example, workdir):
    done = subprocess.run(
        [str(BIN / "run_recbole"), "--model=NoSuchModel", "--dataset=ml-100k"],
        cwd=workdir, env=_env_with(installed_example), capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "Unknown model 'NoSuchModel'" in done.stderr
    for name in ("BPR", "LightGCN", "MultiVAE", "SASRec", "BiasedMF"):
        assert name in done.stderr


# ---------------------------------------------------------------- plugin folders and layering
def test_plugin_path_model_trains_with_its_yaml_layered(tmp_path, fast_config):
    folder = write_plugin(
        tmp_path / "plugins", "LayeredMF",
        yaml="embedding_size: 8\nlearning_rate: 0.005\ntrain_batch_size: 256\nvalid_metric: Recall@10\n",
    )
    config = Config(
        "LayeredMF", "ml-small",
        config_dict=dict(fast_config, plugin_path=str(folder), train_batch_size=128),
        cmd_args=["--learning_rate=0.002"],
    )
    assert config["embedding_size"] == 8  # plugin YAML over RecBole's defaults
    assert config["train_batch_size"] == 128  # config_dict over plugin YAML
    assert config["learning_rate"] == 0.002  # command line over everything
    assert config["valid_metric"] == "Recall@10"  # plugin YAML over recbole_mm's overall.yaml
    assert config["eval_batch_size"] == 409600  # recbole_mm's overall.yaml over RecBole's 4096

    result = run("LayeredMF", "ml-small", config_dict=dict(fast_config, plugin_path=str(folder)))
    assert result["test_result"]["ndcg@10"] >= 0
    loaded_config, model, *_ = load_data_and_model(result["checkpoint"])
    assert type(model).__name__ == "LayeredMF" and loaded_config["embedding_size"] == 8


def test_model_yaml_wins_over_our_overall_and_dataset_yaml_over_both(tmp_path, fast_config, monkeypatch):
    import recbole_mm.config as config_module

    # an overall.yaml of ours that sets a key RecBole's MultiVAE.yaml also sets
    ours = tmp_path / "properties"
    (ours / "model").mkdir(parents=True)
    (ours / "dataset").mkdir()
    (ours / "overall.yaml").write_text("mlp_hidden_size: [7]\neval_batch_size: 1234\n")
    (ours / "dataset" / "ml-small.yaml").write_text("eval_batch_size: 4321\n")
    monkeypatch.setattr(config_module, "properties_dir", lambda: ours)
    config = Config("MultiVAE", "ml-small", config_dict=fast_config)
    assert config["mlp_hidden_size"] == [600]  # RecBole's model YAML over our overall.yaml
    assert config["eval_batch_size"] == 4321  # our dataset YAML over our overall.yaml


@pytest.mark.parametrize(
    "model, keys",
    [
        ("DeepFM", ["metrics", "valid_metric", "eval_args", "load_col", "threshold", "train_neg_sample_args"]),
        ("DIN", ["metrics", "valid_metric", "eval_args", "load_col", "repeatable"]),
        ("KGAT", ["load_col", "kg_reverse_r", "entity_kg_num_interval", "relation_kg_num_interval"]),
    ],
)
def test_recbole_defaults_of_the_model_type_win_over_our_layers(model, keys, monkeypatch):
    """RecBole's last internal layer (quick_start_config: the defaults of context-aware, DIN and
    knowledge-based models) stays last over our overall and dataset YAML, as over RecBole's."""
    monkeypatch.setattr(sys, "argv", sys.argv[:1])  # RecBole's Config reads --key=value from argv
    settings = {"state": "WARNING", "use_gpu": False}
    ours = Config(model, "ml-100k", config_dict=settings)
    stock = RecBoleConfig(model, "ml-100k", config_dict=settings)
    assert {key: ours[key] for key in keys} == {key: stock[key] for key in keys}


def test_bundled_dataset_yaml_wins_over_the_model_yaml():
    config = Config("LFMMLGCN", "ml-100k", config_dict={"state": "WARNING", "use_gpu": False})
    assert config["modalities"] == ["text"]  # properties/dataset/ml-100k.yaml over LFMMLGCN.yaml's ~


def test_plugin_path_from_environment(tmp_path, monkeypatch):
    folder = write_plugin(tmp_path / "env_plugins", "EnvMF")
    monkeypatch.setenv(PLUGIN_PATH_ENV, str(folder))
    fresh = Registry().load()
    assert fresh.get_model("EnvMF").__name__ == "EnvMF"
    assert "plugin path" in fresh.model_source("EnvMF")


def test_name_defined_twice_names_both_sources(tmp_path):
    first = write_plugin(tmp_path / "a", "TwiceMF")
    second = write_plugin(tmp_path / "b", "TwiceMF")
    fresh = Registry()
    fresh.load_path(first)
    with pytest.raises(PluginError) as error:
        fresh.load_path(second)
    message = str(error.value)
    assert str(first / "twicemf.py") in message and str(second / "twicemf.py") in message


def test_plugin_may_not_shadow_a_recbole_model(tmp_path):
    folder = write_plugin(tmp_path / "shadow", "LightGCN", filename="my_lightgcn")
    with pytest.raises(PluginError, match="RecBole"):
        Registry().load_path(folder)


def test_missing_plugin_path_is_a_clear_error(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        Registry().load_path(tmp_path / "nowhere")


def test_broken_plugin_names_its_file(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "bad.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(PluginError, match="bad.py"):
        Registry().load_path(folder)


def test_unknown_model_error_lists_recbole_and_plugin_models(tmp_path):
    fresh = Registry()
    fresh.load_path(write_plugin(tmp_path / "p", "ListedMF"))
    with pytest.raises(UnknownModelError) as error:
        fresh.get_model("Nope")
    assert "BPR" in str(error.value) and "ListedMF" in str(error.value)


# ---------------------------------------------------------------- trainers, datasets, metrics
RICH_PLUGIN = '''
from recbole.data.dataset import Dataset
from recbole.evaluator.base_metric import TopkMetric
from recbole.trainer import Trainer


class RichMFTrainer(Trainer):
    """Used for RichMF automatically: its name is <Model>Trainer."""


class RichMFDataset(Dataset):
    """Used for RichMF automatically: its name is <Model>Dataset."""


class PluginHit(TopkMetric):
    """Hit@k, written as a plugin metric: 1 if any of the top-k items is relevant."""

    metric_need = ["rec.topk"]

    def calculate_metric(self, dataobject):
        pos_index, _ = self.used_info(dataobject)
        hits = (pos_index.cumsum(axis=1) > 0).astype(float)
        return self.topk_result("pluginhit", hits)
'''


def test_plugin_trainer_dataset_and_metric(tmp_path, fast_config):
    folder = write_plugin(tmp_path / "rich", "RichMF", extra=RICH_PLUGIN, yaml="embedding_size: 8\n")
    config_dict = dict(
        fast_config, plugin_path=str(folder), metrics=["Hit", "PluginHit", "NDCG"], topk=[5, 10]
    )
    config = Config("RichMF", "ml-small", config_dict=config_dict)
    assert get_trainer(config).__name__ == "RichMFTrainer"
    assert type(create_dataset(config)).__name__ == "RichMFDataset"

    result = run("RichMF", "ml-small", config_dict=config_dict)
    test = result["test_result"]
    assert test["pluginhit@5"] == test["hit@5"] and test["pluginhit@10"] == test["hit@10"]


def test_trainer_chosen_by_config_key(tmp_path, fast_config):
    folder = write_plugin(tmp_path / "chosen", "ChosenMF", yaml="embedding_size: 8\n")
    config = Config(
        "ChosenMF", "ml-small", config_dict=dict(fast_config, plugin_path=str(folder), trainer="Trainer")
    )
    assert get_trainer(config).__name__ == "Trainer"
    config = Config(
        "ChosenMF", "ml-small",
        config_dict=dict(fast_config, plugin_path=str(folder), trainer="NoSuchTrainer"),
    )
    with pytest.raises(PluginError, match="NoSuchTrainer"):
        get_trainer(config)


def test_builtin_plugins_register_through_entry_points():
    from importlib.metadata import entry_points

    ours = [ep for ep in entry_points(group="recbole_mm.plugins") if ep.value.startswith("recbole_mm.")]
    assert ours, "recbole_mm's own plugins must be declared as entry points in setup.py"
    registry.load()
    for ep in ours:
        module = ep.load()
        # every module registers something (models; plugins/metrics.py: metrics), by entry point
        found = [
            e for kind in ("model", "trainer", "metric")
            for e in registry.entries(kind).values() if e.obj.__module__ == module.__name__
        ]
        assert found and all("entry point" in e.source for e in found), ep.value


def test_plugin_module_importable_standalone_in_subprocess(tmp_path, small_data, workdir):
    """--plugin_path on the command line reaches the registry (no in-process state involved)."""
    folder = write_plugin(tmp_path / "cli_plugins", "CliMF", yaml="embedding_size: 4\n")
    script = textwrap.dedent(
        f"""
        from recbole_mm.cli import run_recbole_main
        raise SystemExit(run_recbole_main([
            "--model", "CliMF", "--dataset=ml-small", "--plugin_path", {str(folder)!r},
            "--epochs=1", "--data_path={small_data}", "--state=WARNING", "--use_gpu=False"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CliMF on ml-small" in done.stdout


def test_broken_installed_plugin_is_skipped_and_reported(tmp_path, workdir):
    site = tmp_path / "site"
    dist_info = site / "broken_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[recbole_mm.plugins]\nbroken = no_such_module_xyz\n")
    listed = subprocess.run(
        [sys.executable, "-m", "recbole_mm", "models"],
        cwd=workdir, env=_env_with(site), capture_output=True, text=True,
    )
    assert listed.returncode == 0 and "LightGCN" in listed.stdout  # the others still work
    assert "broken-plugin" in listed.stderr
    unknown = subprocess.run(
        [str(BIN / "run_recbole"), "--model=FromBrokenPlugin", "--dataset=ml-100k"],
        cwd=workdir, env=_env_with(site), capture_output=True, text=True,
    )
    assert unknown.returncode == 2
    assert "Plugins that failed to load" in unknown.stderr and "no_such_module_xyz" in unknown.stderr
