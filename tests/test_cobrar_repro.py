"""The CoBraR reproduction's command line and run naming (experiments/cobrar_repro.py): every fit
of the paper's grid must get its own run file, and the report's command must regenerate the same
settings. No training here."""

import importlib.util
import shlex
from pathlib import Path

import pytest

from recbole_mm.compare import load_run

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "cobrar_repro.py"


@pytest.fixture(scope="module")
def repro():
    spec = importlib.util.spec_from_file_location("cobrar_repro", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_points_cover_the_grid_and_dmf_has_no_dropout(repro):
    args = repro.parse_args(
        ["--grid-embedding-sizes", "64,128", "--grid-weight-decays", "0.01,0", "--grid-dropouts",
         "0.1,0.5,0.9"]
    )
    assert len(repro.grid_points(args, "CoBraR")) == 2 * 2 * 3
    assert repro.grid_points(args, "DMF") == [(64, 0.01, None), (64, 0.0, None),
                                              (128, 0.01, None), (128, 0.0, None)]
    assert repro.grid_size(args, "CoBraR") == 2 * 2 * 2 * 3  # times the learning rates


def test_every_grid_fit_has_its_own_run_name_and_settings(repro):
    args = repro.parse_args([])
    names = set()
    for model in repro.PAIR:
        for d, wd, p in repro.grid_points(args, model):
            variant = repro.grid_variant(args, (d, wd, p))
            assert variant.work == args.work / "grid"
            for lr in args.learning_rates:
                names.add(repro.run_name(variant, "lastfm-2k", model, args.branch, lr))
            if model == "DMF":  # its settings read the converted dataset's config
                assert repro.grid_settings(variant, model) == {"weight_decay": wd}
                continue
            settings = repro.model_settings(variant, "lastfm-2k", model, args.branch)
            assert (settings["embedding_size"], settings["weight_decay"]) == (d, wd)
            assert settings["dropout_prob"] == p
    expected = sum(repro.grid_size(args, model) for model in repro.PAIR)
    assert len(names) == expected
    # Table 2's runs keep their names and settings: nothing of the grid without a grid point
    assert repro.grid_settings(args, "CoBraR") == {}
    table2 = repro.run_name(args, "lastfm-2k", "CoBraR", args.branch, 0.001)
    assert table2 == "lastfm-2k__CoBraR__256__lr0.001" and table2 not in names


def test_command_spells_out_the_parsed_settings(repro):
    argv = ["--datasets", "lastfm-2k,ml-1m:200", "--figure2-datasets", "lastfm-2k",
            "--grid-datasets", "ml-1m:200", "--grid-weight-decays", "0.001", "--replicate-seeds",
            "7", "--replicate-datasets", "lastfm-2k", "--long-datasets", "lastfm-2k"]
    args = repro.parse_args(argv)
    again = repro.parse_args(shlex.split(repro.command(args))[5:])
    assert vars(again) == vars(args)


@pytest.mark.parametrize("option", ["--figure2-datasets", "--grid-datasets"])
def test_extra_datasets_must_be_in_datasets(repro, option, capsys):
    with pytest.raises(SystemExit):
        repro.parse_args(["--datasets", "lastfm-2k", "--replicate-datasets", "",
                          "--long-datasets", "", option, "amazon-baby"])
    assert "not in --datasets" in capsys.readouterr().err


def test_fits_and_records_are_kept_in_out_so_another_machine_resumes(repro, tmp_path):
    args = repro.parse_args(["--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    seeds = repro.variant_args(args, Path("seeds") / "2021", seed=2021)
    assert seeds.work == args.work / "seeds" / "2021"
    assert seeds.out == args.out / "variants" / "seeds" / "2021"
    assert not args.gzip_records and seeds.gzip_records
    grid = repro.grid_variant(args, (64, 0.01, 0.5))
    # fit summaries of Table 2, of another seed and of the paper's grid: all counted by the report
    for variant, seconds in ((args, 60), (seeds, 120), (grid, 180), (grid, 240)):
        path = repro.fit_path(variant, f"run{seconds}")
        path.parent.mkdir(parents=True, exist_ok=True)
        device = {"device": "cpu (AMD EPYC, AVX512, 2 cores)"} if seconds > 200 else {}
        repro.write_json(path, {"dataset": "lastfm-2k", "fit_seconds": seconds, **device})
    assert repro.fit_path(grid, "run180") == args.out / "variants" / "grid" / "fits" / "run180.json"
    assert repro.fit_totals(args, ["lastfm-2k"]) == (
        4, 10.0, {"not recorded": 3, "cpu (AMD EPYC, AVX512, 2 cores)": 1}
    )
    assert repro.fit_totals(args, ["amazon-baby"]) == (0, 0, {})
    # a gzipped record: same bytes for the same payload, read back by recbole-mm compare
    record = {"model": "DMF", "dataset": "lastfm-2k", "test_result": {"ndcg@5": 0.25},
              "per_user": {"users": ["1", "2"], "metrics": {"ndcg@5": [0.0, 0.5]}}}
    path = seeds.out / "records" / "run120.json.gz"
    path.parent.mkdir(parents=True)
    repro.write_json(path, record)
    first = path.read_bytes()
    repro.write_json(path, record)
    assert path.read_bytes() == first
    run = load_run(path)
    assert run.test_result == {"ndcg@5": 0.25} and run.users == ["1", "2"]


def test_a_kept_record_is_reused_only_for_the_fit_it_tested(repro, tmp_path, monkeypatch):
    args = repro.parse_args(["--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    summary = {"checkpoint": str(args.work / "checkpoints" / "run.pth"), "fit_seconds": 12.5,
               "dataset": "lastfm-2k", "model": "CoBraR", "branch": [256], "learning_rate": 0.001}
    path = args.out / "records" / "run.json"
    path.parent.mkdir(parents=True)
    repro.write_json(path, {"timings": {"fit_seconds": 12.5}})
    assert repro.test(args, summary, "CoBraR") == path

    # fitted again (e.g. on another machine): the kept record is another fit's test; this fit's
    # checkpoint is gone too, so it is trained again before its test
    def trained_again(*fit_args):
        raise RuntimeError(f"trained again: {fit_args[1:]}")

    monkeypatch.setattr(repro, "fit_and_keep", trained_again)
    with pytest.raises(RuntimeError, match=r"trained again: \('lastfm-2k', 'CoBraR', \[256\], 0.001\)"):
        repro.test(args, {**summary, "fit_seconds": 13.0}, "CoBraR")


def test_claims_say_which_figure2_run_did_not_learn(repro, tmp_path):
    """A Figure 2 pair whose CoBraR never moved off its first validation score is counted (as the
    measured difference it is) and named as a run that did not learn."""
    users = ["1", "2", "3", "4"]
    selected = {}
    for i, model in enumerate(repro.MODELS):
        path = tmp_path / f"{model}.json"
        ndcg = [0.1 * i, 0.2 * i, 0.1 * i, 0.3 * i]
        repro.write_json(path, {
            "model": model, "dataset": "lastfm-2k",
            "test_result": {"ndcg@5": sum(ndcg) / 4, "itemcoverage@5": 0.1 * i},
            "per_user": {"users": users, "metrics": {"ndcg@5": ndcg}},
        })
        selected[model] = {"record": str(path)}
    pair = [
        {"branch": "[2048]", "model": model, "learning_rate": 0.01, "ndcg@5": score,
         "ndcg_p_cobrar_vs_dmf": 0.01, "learned": model == "DMF",
         "branch_parameters": parameters, "total_parameters": parameters + 1000}
        for model, score, parameters in (("DMF", 0.2, 200), ("CoBraR", 0.05, 100))
    ]
    lines = repro.claims({"lastfm-2k": selected}, {"lastfm-2k": pair}, [256], [], [], [], [])
    figure2 = [line for line in lines if "Figure 2, lastfm-2k" in line]
    assert figure2 == [
        "   - Figure 2, lastfm-2k, branch [2048]: CoBraR 0.0500 vs DMF 0.2000 (p = 0.01; CoBraR "
        "did not learn at lr 0.01: validation NDCG@5 constant): CoBraR significantly worse."
    ]
    assert lines[0].startswith("1. **Accuracy comparable to DMF: partly.**")
    assert "2. **Half the branch parameters: holds**" in "\n".join(lines)


def test_figure2_hatches_the_box_of_a_run_that_did_not_learn(repro, tmp_path):
    runs, rows = [], []
    for model, ndcg, learned in (("DMF", [0.1, 0.3, 0.2], True), ("CoBraR", [0.0, 0.0, 0.1], False)):
        path = tmp_path / f"{model}.json"
        repro.write_json(path, {
            "model": model, "dataset": "lastfm-2k", "test_result": {"ndcg@5": sum(ndcg) / 3},
            "per_user": {"users": ["1", "2", "3"], "metrics": {"ndcg@5": ndcg}},
        })
        runs.append({"record": str(path), "branch": [2048]})
        rows.append({"branch_parameters": 100, "learned": learned})
    figure = repro.figure2_figure("lastfm-2k", runs, rows)
    from matplotlib import pyplot as plt

    axis = figure.axes[0]
    assert [patch.get_hatch() for patch in axis.patches] == [None, "xx"]
    assert axis.get_title().endswith("hatched: did not learn (validation NDCG@5 constant)")
    plt.close(figure)


@pytest.mark.parametrize("kept", [3, 5])
def test_the_epoch_cap_says_when_the_longer_run_kept_an_epoch_the_capped_run_reached(repro, kept):
    """The epoch-cap summary says when both longer fits kept an epoch within the shorter cap (so
    the numbers can repeat), and only then."""
    rows = [
        {"dataset": "lastfm-2k", "max_epochs": cap, "CoBraR_ndcg@5": 0.21, "DMF_ndcg@5": 0.2,
         "ndcg_p_cobrar_vs_dmf": 0.5, "CoBraR_epochs": epochs, "DMF_epochs": epochs,
         "CoBraR_best_epoch": min(cap, kept), "DMF_best_epoch": 2}
        for cap, epochs in ((4, 4), (50, 6))
    ]
    summary = repro.cap_summary(rows)
    assert len(summary) == 1
    within = f"kept the models of epochs {kept} (CoBraR) and 2 (DMF), within the first 4 that"
    assert (within in summary[0]) == (kept <= 4)
