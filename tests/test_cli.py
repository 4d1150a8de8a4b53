"""Entry points: run_recbole's RecBole-style arguments, recbole-mm subcommands, the demo, records."""

import json
import subprocess
import sys

import pytest

import recbole_mm
from recbole_mm.cli import main, run_recbole_main
from recbole_mm.config import Config, ConfigError, parse_cmd_args


def test_parse_cmd_args_accepts_both_spellings():
    assert parse_cmd_args(["--epochs=3", "--learning_rate", "0.01"]) == {
        "epochs": "3",
        "learning_rate": "0.01",
    }


@pytest.mark.parametrize("bad", [["epochs=3"], ["--epochs"], ["--epochs=1", "--epochs=2"], ["--"]])
def test_parse_cmd_args_rejects_malformed_arguments(bad):
    with pytest.raises(ConfigError):
        parse_cmd_args(bad)


def test_run_recbole_trains_and_prints_a_table(small_data, workdir, capsys):
    status = run_recbole_main(
        ["--model=BPR", "--dataset", "ml-small", "--epochs", "1", f"--data_path={small_data}",
         "--state=WARNING", "--use_gpu=False", "--learning_rate=0.01"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "BPR on ml-small" in out and "recall@10" in out
    record_path = out.strip().splitlines()[-1].split("record: ")[1]
    with open(record_path, encoding="utf-8") as f:
        record = json.load(f)
    assert record["config"]["learning_rate"] == 0.01  # the command line reached the config
    assert record["checkpoint"].endswith(".pth")
    assert len(record["timings"]["train_epoch_seconds"]) == 1
    assert record["versions"]["recbole"] == "1.2.1"
    assert record["device"].startswith("cpu")


def test_config_files_are_layered_in_order(small_data, workdir, capsys):
    first, second = workdir / "a.yaml", workdir / "b.yaml"
    first.write_text("epochs: 1\nlearning_rate: 0.1\nembedding_size: 16\n")
    second.write_text("learning_rate: 0.02\n")
    status = run_recbole_main(
        ["--model=BPR", "--dataset=ml-small", f"--config_files={first} {second}",
         f"--data_path={small_data}", "--state=WARNING", "--use_gpu=False", "--no_save"]
    )
    out = capsys.readouterr().out
    assert status == 0
    with open(out.strip().splitlines()[-1].split("record: ")[1], encoding="utf-8") as f:
        config = json.load(f)["config"]
    assert config["learning_rate"] == 0.02 and config["embedding_size"] == 16


def test_unknown_model_exits_2_with_the_list(capsys):
    assert run_recbole_main(["--model=Missing", "--dataset=ml-100k"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'Missing'" in err and "LightGCN" in err


def test_invalid_valid_metric_fails_before_training(capsys):
    status = run_recbole_main(["--model=BPR", "--dataset=ml-100k", "--valid_metric=MAP@10"])
    assert status == 2
    assert "valid_metric 'MAP@10'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model=BPR", "--valid_metric=NDCG@5"], "needs the cut-off 5, but topk is [10, 20]"),
        (["--model=BPR", "--valid_metric=NDCG@5", "--topk=5"], None),  # an int, as RecBole allows
        (["--model=UnifiedSearchRec", "--valid_metric=search_ndcg@20", "--search_topk=[10]"],
         "needs the cut-off 20, but search_topk is [10]"),
        (["--model=UnifiedSearchRec", "--valid_metric=multitask_ndcg@20", "--search_topk=[10,20]",
          "--topk=[10]"], "needs the cut-off 20, but topk is [10]"),
    ],
)
def test_valid_metric_at_a_cut_off_not_computed_fails_before_training(args, message):
    cmd_args = ["--dataset=ml-100k", *args]
    if message is None:
        Config(cmd_args=cmd_args)
        return
    with pytest.raises(ConfigError) as error:
        Config(cmd_args=cmd_args)
    assert message in str(error.value)


def test_top_k_lists_longer_than_the_catalogue_fail_before_training(fast_config, workdir):
    with pytest.raises(ConfigError, match=r"top-5000 lists, but dataset 'ml-small' has \d+ items"):
        recbole_mm.run("BPR", "ml-small", config_dict=dict(fast_config, topk=[10, 5000]))
    assert not (workdir / "saved").exists()  # no epoch ran


def test_models_subcommand_lists_recbole_models(capsys):
    assert main(["models"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"BPR", "LightGCN", "SASRec"} <= set(names)


def test_python_dash_m_runs_the_cli(workdir):
    done = subprocess.run(
        [sys.executable, "-m", "recbole_mm", "--help"], capture_output=True, text=True, cwd=workdir
    )
    assert done.returncode == 0 and "demo" in done.stdout and "run" in done.stdout


def test_demo_compares_models_on_bundled_ml100k(workdir, capsys):
    # the demo's models, minus LF-MMLGCN on ml-100k (tests/test_lfmmlgcn.py runs that one)
    assert main(["demo", "--epochs", "1", "--models", "BPR,LightGCN"]) == 0
    out = capsys.readouterr().out
    assert "ml-100k, 1 epochs" in out
    table_rows = [line.split()[0] for line in out.splitlines() if line.startswith(("BPR ", "LightGCN "))]
    assert table_rows == ["BPR", "LightGCN"]
