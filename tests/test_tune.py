"""recbole-mm tune: search spaces, the trial's config, and a real search on CPU that is killed and resumed.

The search scenario (one module fixture, run once): BPR (under test) and CoBraR (a plugin, as the
baseline) on ml-small, grid search, 4 trials of at most 3 epochs each, one trial at a time. BPR's
grid holds a learning rate of 0 (a model that never learns: ASHA must stop it), and one of -1
(the optimizer raises: the trial fails, the others go on). The driver is killed (SIGKILL) after
two BPR trials ended, then the same command is run again twice.
"""

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray
import yaml
from ray import air, tune

from recbole_mm.config import Config, properties_dir
from recbole_mm.tune import TuneError, load_space, parse_space
from recbole_mm.tune import search as search_module
from recbole_mm.tune.report import best_row, best_so_far, trial_status
from recbole_mm.tune.search import TuneSettings, _search_algorithm, plan_model, run_tune
from recbole_mm.tune.trainable import TrialSetup, trial_config_dict

SHIPPED = Path(str(properties_dir() / "tune"))


# ------------------------------------------------------------------------------------ spaces
def test_every_kind_becomes_a_ray_domain_with_the_right_range():
    space = parse_space(
        "lr: {loguniform: [1e-4, 1.0e-2]}\n"
        "drop: {uniform: [0.0, 0.5]}\n"
        "size: {quniform: [16, 128, 16]}\n"
        "frac: {quniform: [0.2, 0.8, 0.2]}\n"
        "layers: {choice: [[64], [128, 64]]}\n"
        "fusion: {grid: [mean, max]}\n"
    )
    domains = space.tune_space()
    for _ in range(50):
        sampled = {name: domain.sample() for name, domain in domains.items()}
        values = space.decode(sampled)
        assert 1e-4 <= values["lr"] <= 1e-2 and 0.0 <= values["drop"] <= 0.5
        assert isinstance(values["size"], int) and values["size"] % 16 == 0 and 16 <= values["size"] <= 128
        assert isinstance(values["frac"], float) and round(values["frac"] / 0.2, 6) % 1 == 0
        assert values["layers"] in ([64], [128, 64]) and values["fusion"] in ("mean", "max")


def test_loguniform_samples_spread_over_orders_of_magnitude():
    domain = parse_space("lr: {loguniform: [1.0e-6, 1.0]}").tune_space()["lr"]
    samples = [domain.sample() for _ in range(400)]
    below = sum(s < 1e-3 for s in samples) / len(samples)
    assert 0.35 < below < 0.65  # log-uniform: half the mass below the geometric middle 1e-3


def test_grid_points_are_the_first_combinations_in_file_order():
    space = parse_space("a: {grid: [1, 2]}\nb: {choice: [x, y]}\nc: {grid: [[1], [2, 3]]}\n")
    assert space.grid_points(3) == [
        {"a": 1, "c": "[1]"}, {"a": 1, "c": "[2, 3]"}, {"a": 2, "c": "[1]"}
    ]
    assert space.decode({"a": 2, "b": "y", "c": "[2, 3]"}) == {"a": 2, "b": "y", "c": [2, 3]}
    with pytest.raises(TuneError, match="grid has 4 combinations but --num-samples is 5"):
        space.grid_points(5)
    with pytest.raises(TuneError, match="needs at least one 'grid:' key"):
        parse_space("b: {choice: [x, y]}").grid_points(1)


@pytest.mark.parametrize("text, message", [
    ("lr: {logunifrom: [1.0e-4, 1.0e-2]}", r"line 1, key 'lr': unknown rule 'logunifrom'; use one of choice"),
    ("a: {choice: [1]}\nlr: {uniform: [1, 2, 3]}", r"line 2, key 'lr': 'uniform' takes 2 numbers"),
    ("lr: {uniform: [0.5, 0.1]}", r"needs low < high \(got low=0.5, high=0.1\)"),
    ("lr: {loguniform: [0, 0.1]}", r"'loguniform' needs 0 < low"),
    ("lr: {uniform: [1e-4, abc]}", r"takes 2 numbers"),
    ("d: {quniform: [0.1, 0.2, 0.5]}", r"needs 0 < q <= high - low"),
    ("d: {quniform: [0.1, 0.9, 0.2]}", r"needs low and high to be multiples of q"),
    ("d: {choice: []}", r"'choice' needs at least one value"),
    ("d: {choice: [1, 2, 1]}", r"lists 1 twice"),
    ("d: {choice: 3}", r"'choice' takes a list"),
    ("d: 0.5", r"write one sampling rule.*fixed values belong in a --config-files YAML"),
    ("d: {choice: [1], grid: [2]}", r"write one sampling rule"),
    ("a: {choice: [1]}\nb: {choice: [2]}\na: {grid: [3]}", r"line 3, key 'a': the key is given twice \(also on line 1\)"),
    ("epochs: {choice: [5, 10]}", r"the tuner sets 'epochs' itself \(the budget is --max-epochs\)"),
    ("gpu_id: {choice: ['0', '1']}", r"the GPU Ray assigns"),
    ("", r"the search space is empty"),
    ("[1, 2]", r"a mapping of config keys"),
    ("a: {choice: [1]\n", r"not valid YAML"),
])
def test_invalid_spaces_name_the_file_line_and_fix(text, message):
    with pytest.raises(TuneError, match=message) as error:
        parse_space(text, "my_space.yaml")
    assert str(error.value).startswith("my_space.yaml")


def test_a_missing_space_file_says_what_to_do(tmp_path):
    with pytest.raises(TuneError, match="not found: pass --space FILE"):
        load_space(tmp_path / "Nope.yaml")


def test_keys_the_model_does_not_have_are_refused(tmp_path):
    path = tmp_path / "BPR.yaml"
    path.write_text("learning_rate: {choice: [0.01]}\nn_layers: {choice: [1, 2]}\n")
    settings = TuneSettings(model="BPR", dataset="ml-100k", output=str(tmp_path), space=str(path))
    with pytest.raises(TuneError, match=r"BPR.yaml, line 2: 'n_layers' is not a config key of BPR"):
        plan_model(settings, "BPR")


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_spaces_parse_and_fit_their_model(path, tmp_path):
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert all(" # (" in line for line in lines), "every key has a '# (type) meaning' comment"
    settings = TuneSettings(model=path.stem, dataset="ml-100k", output=str(tmp_path), search="grid",
                            num_samples=2)
    plan = plan_model(settings, path.stem)  # every key is a config key of the model
    assert plan.metric == "ndcg@10" and plan.mode == "max"
    assert os.path.isabs(plan.setup.fixed["data_path"]) and plan.setup.fixed["epochs"] == 20


def test_shipped_spaces_cover_our_models_and_the_baselines():
    assert {"LFMMLGCN", "EFMMLGCN", "MMLGCN", "CoBraR", "LightGCN", "BPR", "DMF", "MultiVAE",
            "NGCF"} <= {p.stem for p in SHIPPED.glob("*.yaml")}
    dmf = load_space(SHIPPED / "DMF.yaml")  # DMF needs equal last user and item layers
    assert {v[-1] for key in ("user_hidden_size_list", "item_hidden_size_list")
            for v in dmf.parameters[key].args} == {64}


def test_bayes_search_samples_inside_the_space():
    space = parse_space(
        "learning_rate: {loguniform: [1.0e-4, 1.0e-2]}\n"
        "embedding_size: {quniform: [16, 64, 16]}\n"
        "branch_layers: {choice: [[256], [512, 256]]}\n"
        "n_layers: {grid: [1, 2, 3]}\n"
    )
    settings = TuneSettings(model="X", dataset="d", output="o", search="bayes")
    plan = SimpleNamespace(space=space)
    searcher = _search_algorithm(settings, plan, seed=7).searcher  # Optuna, in Ray's wrapper
    assert searcher.set_search_properties("best_valid_score", "max", space.tune_space())
    for i in range(8):
        values = space.decode(searcher.suggest(f"t{i}"))
        assert 1e-4 <= values["learning_rate"] <= 1e-2
        assert values["embedding_size"] in (16, 32, 48, 64)
        assert values["branch_layers"] in ([256], [512, 256]) and values["n_layers"] in (1, 2, 3)


# ------------------------------------------------------------------------- settings, trials
@pytest.mark.parametrize("changes, message", [
    ({"scheduler": "hyperband"}, "--scheduler hyperband: choose one of asha, fifo"),
    ({"gpus_per_trial": 1.5}, "use a fraction of one GPU"),
    ({"grace_period": 3, "max_epochs": 3}, "ASHA cannot stop a trial"),
    ({"baselines": ["BPR"]}, "--baselines lists the model under test"),
    ({"cpus_per_trial": 0}, "--cpus-per-trial must be positive"),
])
def test_settings_that_cannot_run_are_refused(changes, message):
    settings = TuneSettings(**{"model": "BPR", "dataset": "d", "output": "o", **changes})
    with pytest.raises(TuneError, match=message):
        settings.check()


def test_a_trial_uses_the_gpu_ray_assigned_and_its_own_checkpoint_dir(small_data, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # as Ray sets it; restored after the test
    config_file = tmp_path / "user.yaml"
    config_file.write_text("gpu_id: '1'\nuse_gpu: True\n")  # a user's gpu_id must not win
    space = parse_space("learning_rate: {choice: [0.01]}\nembedding_size: {choice: [[8]]}\n")
    setup = TrialSetup("BPR", "ml-small", (str(config_file),),
                       {"data_path": str(small_data), "epochs": 3, "seed": 5}, space)
    trial_dir = tmp_path / "trial_0"
    config_dict = trial_config_dict(setup, {"learning_rate": 0.01, "embedding_size": "[8]"},
                                    str(trial_dir), gpu_ids=[3])
    config = Config("BPR", "ml-small", list(setup.config_files), config_dict)
    assert config["gpu_id"] == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert config["checkpoint_dir"] == str(trial_dir / "checkpoints")
    assert config["embedding_size"] == [8] and config["epochs"] == 3 and config["seed"] == 5
    cpu = trial_config_dict(setup, {}, str(trial_dir), gpu_ids=[])
    assert (cpu["gpu_id"], cpu["use_gpu"]) == ("", False)
    assert str(Config("BPR", "ml-small", None, cpu)["device"]) == "cpu"


@pytest.mark.parametrize("visible", ["0,1,2,3", None])
def test_planning_leaves_the_visible_gpus_to_ray(visible, tmp_path, monkeypatch):
    """RecBole's Config writes gpu_id ('0') into CUDA_VISIBLE_DEVICES; Ray must still see all GPUs."""
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    plan_model(TuneSettings(model="BPR", dataset="ml-100k", output=str(tmp_path)), "BPR")
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == visible


@pytest.mark.parametrize("cpus, threads", [(0.5, 1), (1, 1), (2.5, 2)])
def test_a_trial_trains_with_the_cpus_ray_reserved(cpus, threads, tmp_path):
    settings = TuneSettings(model="BPR", dataset="ml-100k", output=str(tmp_path), cpus_per_trial=cpus)
    assert plan_model(settings, "BPR").setup.threads == threads


def test_statuses_selection_and_best_so_far_by_hand():
    assert trial_status("TERMINATED", {"finished": True, "early_stopped": False}) == "completed"
    assert trial_status("TERMINATED", {"finished": True, "early_stopped": True}) == "early_stopped"
    assert trial_status("TERMINATED", {"finished": False}) == "pruned"  # ended by the scheduler
    assert trial_status("RUNNING", {}, failed=True) == "failed"
    assert trial_status("PENDING", {}) == "pending"
    rows = [
        {"trial": 1, "status": "completed", "best_valid_score": 0.20},
        {"trial": 2, "status": "failed", "best_valid_score": 0.90},  # never selected
        {"trial": 3, "status": "pruned", "best_valid_score": 0.10},
        {"trial": 4, "status": "early_stopped", "best_valid_score": 0.30},
        {"trial": 5, "status": "completed", "best_valid_score": 0.30},  # tie: the earlier wins
    ]
    assert best_row(rows, "max")["trial"] == 4
    assert best_row(rows, "min")["trial"] == 3
    assert best_so_far(rows, "max") == [0.20, 0.20, 0.20, 0.30, 0.30]
    assert best_so_far(rows, "min") == [0.20, 0.20, 0.10, 0.10, 0.10]
    assert best_row([{"trial": 1, "status": "failed", "best_valid_score": None}], "max") is None


# -------------------------------------------------- a restore whose searcher state is behind
class _KeepSearcherState(tune.Callback):
    """Copies Ray's saved searcher state aside when the third trial starts (it counts < 4 trials):
    every file of the experiment folder but the trials' state and the trial folders."""

    def __init__(self, experiment, copy):
        self.experiment, self.copy = experiment, copy

    def on_trial_start(self, iteration, trials, trial, **info):
        saved = [p for p in self.experiment.glob("*state*") if not p.name.startswith("experiment_state")]
        if len(trials) == 3 and saved:
            self.copy.mkdir()
            for path in saved:
                shutil.copyfile(path, self.copy / path.name)


def _restore_with_the_searcher_behind(root, search):
    """A finished 4-trial search (``grid`` or ``bayes``) given back the searcher state saved before
    its 4th trial, then restored (run in a subprocess by the test below); prints what it checks."""
    root = Path(root)
    experiment, stale = root / "X", root / "searcher_before_trial_4"

    def report_x(config):  # defined here: Ray's workers cannot import this test module
        from ray.air import session

        session.report({"epoch": 1, "best_valid_score": float(config["x"])})

    def trial_results():
        return {p.name: (p / "result.json").read_text() for p in experiment.iterdir() if p.is_dir()}

    space = SimpleNamespace(grid_points=lambda n: [{"x": x} for x in range(n)])
    settings = TuneSettings(model="X", dataset="d", output="o", search=search, num_samples=4,
                            max_concurrent_trials=1)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    tune.Tuner(
        report_x,
        param_space={"x": tune.uniform(0, 3)},
        tune_config=tune.TuneConfig(
            metric="best_valid_score", mode="max", num_samples=4,
            search_alg=_search_algorithm(settings, SimpleNamespace(space=space), seed=7),
        ),
        run_config=air.RunConfig(name="X", storage_path=str(root), verbose=0,
                                 callbacks=[_KeepSearcherState(experiment, stale)]),
    ).fit()
    if not stale.is_dir():
        raise AssertionError("no searcher state was saved before the 4th trial")
    for path in stale.iterdir():
        shutil.copyfile(path, experiment / path.name)
    before = trial_results()
    results = tune.Tuner.restore(str(experiment), report_x, resume_unfinished=True).fit()
    print(json.dumps({
        "before": before, "after": trial_results(), "errors": len(results.errors),
        "scores": sorted(r.metrics["best_valid_score"] for r in results),
    }))


@pytest.mark.parametrize("search", ["grid", "bayes"])
def test_a_restored_search_runs_each_trial_once_when_its_searcher_state_is_behind(search, tmp_path):
    # Ray saves the trials, then the searcher: a driver killed between the two leaves a searcher
    # that, restored, creates the newest trial(s) again (grid) or crashes on a trial it never
    # suggested (bayes), and still counts an ended trial as running. Built here without the race,
    # in a subprocess (a hang is a failure).
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_tune; "
            f"test_tune._restore_with_the_searcher_behind({str(tmp_path)!r}, {search!r})")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the restored search did not finish in 120 s (it waits for a trial that ended)")
    assert process.returncode == 0, err[-5000:]
    seen = json.loads(out.strip().splitlines()[-1])
    assert len(seen["before"]) == 4 and seen["errors"] == 0 and len(seen["scores"]) == 4
    if search == "grid":
        assert seen["scores"] == [0.0, 1.0, 2.0, 3.0]
    assert seen["after"] == seen["before"]  # no trial ran again, none was created twice


@pytest.mark.parametrize("search", ["grid", "bayes"])
def test_a_restored_trial_the_searcher_had_not_counted_keeps_its_concurrency_slot(search, tmp_path, monkeypatch):
    # one trial at a time: trial 0 ran while the searcher state was saved, then ended; trial 1
    # started and the driver was killed before the searcher state was saved again
    def new_search():
        generator = _search_algorithm(
            TuneSettings(model="X", dataset="d", output="o", search=search, num_samples=4,
                         max_concurrent_trials=1),
            SimpleNamespace(space=SimpleNamespace(grid_points=lambda n: [{"x": x} for x in range(n)])),
            seed=7,
        )
        space = {"x": tune.uniform(0, 3)}
        generator.set_search_properties("best_valid_score", "max", space)  # as Tuner does
        generator.add_configurations({"X": {"run": lambda config: None, "num_samples": 4, "config": space}})
        return generator

    first = new_search()
    trial_0 = first.next_trial()
    first.save_to_dir(str(tmp_path), "s")
    first.on_trial_complete(trial_0.trial_id, {"best_valid_score": 0.5})
    trial_1 = first.next_trial()
    saved = ({trial_0.trial_id, trial_1.trial_id}, {trial_0.trial_id})  # all trials, ended ones
    monkeypatch.setattr(search_module, "_saved_trials", lambda experiment_dir: saved)
    restored = new_search()
    restored.restore_from_dir(str(tmp_path))
    assert restored.next_trial() is None  # the restored trial 1 runs: no second trial beside it
    restored.on_trial_complete(trial_1.trial_id, {"best_valid_score": 0.7})
    trial_2 = restored.next_trial()
    assert trial_2 is not None and trial_2.trial_id not in saved[0]
    if search == "grid":
        assert trial_2.config == {"x": 2}


# ------------------------------------------------- a real search, killed and resumed (CPU)
BPR_SPACE = """
learning_rate: {grid: [0.01, 0.0, -1.0, 0.005]}   # (float) 0 never learns, -1 makes Adam raise
embedding_size: {choice: [16]}                    # (int)
"""
COBRAR_SPACE = """
embedding_size: {grid: [8, 16]}                   # (int)
dropout_prob: {grid: [0.1, 0.5]}                  # (float)
projection_size: {choice: [32]}                   # (int)
branch_layers: {choice: [[32]]}                   # (list of int)
"""
FAST = {
    "train_batch_size": 512,
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user", "mode": "full"},
    "state": "WARNING",
}
ENDED = ("completed", "early_stopped", "pruned", "failed")


def _rows(out, model):
    path = out / "trials" / f"{model}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []


@pytest.fixture(scope="module")
def search(small_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    (root / "spaces").mkdir()
    (root / "spaces" / "BPR.yaml").write_text(BPR_SPACE)
    (root / "spaces" / "CoBraR.yaml").write_text(COBRAR_SPACE)
    (root / "fast.yaml").write_text(yaml.safe_dump(FAST))
    command = [
        sys.executable, "-m", "recbole_mm", "tune", "--model", "BPR", "--baselines", "CoBraR",
        "--dataset", "ml-small", "--data-path", os.path.relpath(small_data, root),  # relative
        "--config-files", "fast.yaml", "--space-dir", "spaces", "--search", "grid",
        "--num-samples", "4", "--max-epochs", "3", "--max-concurrent-trials", "1",
        "--output", "out", "--verbose", "0",
    ]
    out = root / "out"
    with open(root / "first.log", "w") as log:
        # its own session: the kill takes Ray's processes down with the driver
        first = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        deadline = time.monotonic() + 180
        while first.poll() is None and time.monotonic() < deadline:
            if sum(r["status"] in ENDED for r in _rows(out, "BPR")) >= 2:
                break
            time.sleep(0.1)
        killed = first.poll() is None
        if killed:
            os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    before = {
        r["trial_id"]: (r["status"], (Path(r["trial_dir"]) / "result.json").read_bytes())
        for r in _rows(out, "BPR") if r["status"] in ENDED
    }
    second = subprocess.run(command, check=False, cwd=root, capture_output=True, text=True, timeout=400)
    after_second = {m: _rows(out, m) for m in ("BPR", "CoBraR")}
    records = sorted(str(p) for p in (out / "final").glob("*/*.json"))
    third = subprocess.run(command, check=False, cwd=root, capture_output=True, text=True, timeout=200)
    return SimpleNamespace(out=out, killed=killed, before=before, second=second, third=third,
                           rows=after_second, records=records, first_log=(root / "first.log"))


def test_killed_search_resumes_without_redoing_finished_trials(search):
    assert search.killed, f"the driver finished before it could be killed:\n{search.first_log.read_text()[-3000:]}"
    assert search.second.returncode == 0, search.second.stdout[-3000:] + search.second.stderr[-5000:]
    assert "resuming the interrupted search of BPR" in search.second.stderr
    assert len(search.before) >= 2
    rows = {r["trial_id"]: r for r in search.rows["BPR"]}
    assert len(rows) == 4 and all(r["status"] in ENDED for r in rows.values())
    for trial_id, (status, result) in search.before.items():
        assert rows[trial_id]["status"] == status
        assert (Path(rows[trial_id]["trial_dir"]) / "result.json").read_bytes() == result  # not rerun
    # no trial was started again under a new id (a trial created but not started before the kill
    # gets a second, dated directory when it starts)
    ids = {re.match(r"train_trial_([0-9a-f]+_\d+)_", p.name).group(1)
           for p in (search.out / "ray" / "BPR").iterdir() if p.is_dir()}
    assert ids == set(rows)


def test_asha_stopped_the_trials_that_trail_also_after_the_resume(search):
    by_lr = {r["config"]["learning_rate"]: r for r in search.rows["BPR"]}
    assert by_lr[0.01]["status"] == "completed" and by_lr[0.01]["epochs"] == 3
    assert by_lr[0.0]["status"] == "pruned" and by_lr[0.0]["epochs"] == 1  # it never learns
    # lr 0.005 runs after the kill (or restarts): it trails lr 0.01 after one epoch and is stopped
    # only if the resumed ASHA still knows the rung results from before the kill
    assert by_lr[0.005]["status"] == "pruned" and by_lr[0.005]["epochs"] == 1


def test_a_failing_trial_is_recorded_and_the_others_run(search):
    by_lr = {r["config"]["learning_rate"]: r for r in search.rows["BPR"]}
    assert by_lr[-1.0]["status"] == "failed"
    assert "Invalid learning rate: -1.0" in by_lr[-1.0]["error"]
    assert by_lr[0.005]["status"] != "failed" and by_lr[0.005]["epochs"] >= 1
    assert len(search.rows["CoBraR"]) == 4
    assert not any(r["status"] == "failed" for r in search.rows["CoBraR"])


def test_each_trial_has_its_own_checkpoint_and_never_sees_test(search):
    for row in search.rows["BPR"] + search.rows["CoBraR"]:
        if row["status"] == "failed":
            continue
        trial_dir = Path(row["trial_dir"])
        assert (trial_dir / "checkpoints" / f"{row['model']}.pth").is_file()
        reported = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        assert [r["epoch"] for r in reported] == list(range(1, row["epochs"] + 1))  # every epoch
        assert not any(key.startswith("test") for r in reported for key in r)


def test_best_config_is_the_best_validation_trial_and_is_tested_once(search):
    with open(search.out / "trials.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8
    for model in ("BPR", "CoBraR"):
        usable = [r for r in table if r["model"] == model and r["status"] != "failed"]
        best = max(usable, key=lambda r: float(r["best_valid_ndcg@10"]))
        written = Config(model, "ml-small", [str(search.out / "best" / f"{model}.yaml")])
        for key in ("learning_rate",) if model == "BPR" else ("embedding_size", "dropout_prob"):
            assert written[key] == yaml.safe_load(best[key])
        assert os.path.isabs(written["data_path"])
        records = [r for r in search.records if f"/final/{model}/" in r]
        assert len(records) == 1  # the test set is evaluated once per model
        record = json.loads(Path(records[0]).read_text())
        assert record["per_user"]
        retrained, searched = record["best_valid_score"], float(best["best_valid_ndcg@10"])
        if best["status"] == "completed":  # same config, seed and epochs: the same training
            assert retrained == pytest.approx(searched, abs=1e-4)
        else:  # a pruned best trial trains longer when retrained
            assert retrained >= searched - 1e-4
    comparison = (search.out / "comparison.md").read_text()
    assert "| BPR |" in comparison and "| CoBraR |" in comparison
    assert "reference run CoBraR" in comparison  # the only baseline is the best one
    assert (search.out / "best_so_far.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| BPR | 4 |" in (search.out / "report.md").read_text()


def test_rerunning_a_finished_search_redoes_nothing(search):
    assert search.third.returncode == 0, search.third.stderr[-3000:]
    assert sorted(str(p) for p in (search.out / "final").glob("*/*.json")) == search.records
    assert {m: _rows(search.out, m) for m in ("BPR", "CoBraR")} == search.rows
    assert "resuming" not in search.third.stderr


def test_changed_settings_do_not_resume_into_the_same_output(search, small_data):
    root = search.out.parent
    settings = TuneSettings(
        model="BPR", baselines=["CoBraR"], dataset="ml-small", output=str(search.out),
        data_path=str(small_data), config_files=[str(root / "fast.yaml")],
        space_dir=str(root / "spaces"), num_samples=2, max_epochs=3, search="grid",
    )
    with pytest.raises(TuneError, match=r"holds a search with other settings \(num_samples differ\)"
                                        r".*choose a new --output"):
        run_tune(settings)
