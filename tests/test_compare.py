"""`recbole-mm compare` (significance marks recomputed by hand) and `recbole-mm params`."""

import csv
import gzip
import json

import numpy as np
import pytest
from scipy import stats

from recbole_mm.cli import main
from recbole_mm.compare import CompareError, compare_files, load_run, paired_p_value
from recbole_mm.quick_start import run

USERS = [str(u) for u in range(1, 41)]


def _record(path, model, per_user, test_result=None, users=USERS, dataset="toy"):
    """A run record as quick_start writes it, with the given per-user values."""
    means = {name: float(np.mean(values)) for name, values in per_user.items()}
    record = {
        "model": model,
        "dataset": dataset,
        "test_result": dict(means, **(test_result or {})),
        "per_user": {"users": users, "metrics": {k: list(v) for k, v in per_user.items()}},
    }
    path.write_text(json.dumps(record))
    return str(path)


@pytest.fixture
def toy_runs(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, len(USERS))
    runs = {
        # A: best NDCG, clearly above C; B: a hair below A (not significant)
        "A": {"ndcg@10": base + 0.2, "arp@10": base * 10 + 5},
        "B": {"ndcg@10": base + 0.2 - rng.normal(0, 0.02, len(USERS)), "arp@10": base * 10 + 4},
        "C": {"ndcg@10": base, "arp@10": base * 10 + 30},
    }
    paths = [
        _record(tmp_path / f"{name}.json", name, values, {"itemcoverage@10": coverage})
        for (name, values), coverage in zip(runs.items(), (0.3, 0.5, 0.2))
    ]
    return paths, runs


def test_marks_are_bonferroni_corrected_paired_t_tests(toy_runs, tmp_path):
    paths, runs = toy_runs
    table = compare_files(paths, str(tmp_path / "out"))
    assert table.labels == ["A", "B", "C"]
    cells = table.cells
    # NDCG: A is best (bold); each other run tested against A, p x 2 comparisons
    assert cells["A"]["ndcg@10"].best and not cells["B"]["ndcg@10"].best
    for other in ("B", "C"):
        p = stats.ttest_rel(runs["A"]["ndcg@10"], runs[other]["ndcg@10"]).pvalue
        assert cells[other]["ndcg@10"].p_value == pytest.approx(min(2 * p, 1.0))
        assert cells[other]["ndcg@10"].significant == (min(2 * p, 1.0) < 0.05)
    assert cells["C"]["ndcg@10"].significant
    assert cells["A"]["ndcg@10"].p_value is None  # the reference itself is not tested
    # ARP: smaller is better, so B (the lowest) is bold and the reference
    assert cells["B"]["arp@10"].best
    p = stats.ttest_rel(runs["B"]["arp@10"], runs["C"]["arp@10"]).pvalue
    assert cells["C"]["arp@10"].p_value == pytest.approx(min(2 * p, 1.0))
    # coverage has no per-user values: bold, never tested
    assert cells["B"]["itemcoverage@10"].best
    assert all(cells[x]["itemcoverage@10"].p_value is None for x in "ABC")

    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert markdown == table.markdown
    assert markdown.splitlines()[4].startswith("| C | 0.5367* |")
    assert "Bonferroni" in markdown
    rows = list(csv.DictReader(open(tmp_path / "out" / "comparison.csv")))
    assert [row["model"] for row in rows] == ["A", "B", "C"]
    assert float(rows[2]["ndcg@10 p"]) == pytest.approx(cells["C"]["ndcg@10"].p_value)
    assert float(rows[0]["ndcg@10"]) == pytest.approx(np.mean(runs["A"]["ndcg@10"]))


def test_wilcoxon_and_a_fixed_reference(toy_runs, tmp_path):
    paths, runs = toy_runs
    table = compare_files(paths, str(tmp_path), test="wilcoxon", reference="C")
    for other in ("A", "B"):
        p = stats.wilcoxon(runs["C"]["ndcg@10"], runs[other]["ndcg@10"]).pvalue
        assert table.cells[other]["ndcg@10"].p_value == pytest.approx(min(2 * p, 1.0))
    assert "reference run C" in table.markdown and "Wilcoxon" in table.markdown


def test_users_are_aligned_by_token(tmp_path):
    values = np.linspace(0, 1, len(USERS))
    a = _record(tmp_path / "a.json", "A", {"ndcg@10": values})
    # the same values for the same users, listed in reverse order: no difference at all
    b = _record(tmp_path / "b.json", "B", {"ndcg@10": values[::-1]}, users=USERS[::-1])
    table = compare_files([a, b], str(tmp_path))
    assert table.cells["B"]["ndcg@10"].p_value == 1.0
    assert paired_p_value(values, values) == 1.0


def test_runs_that_cannot_be_compared(toy_runs, tmp_path):
    paths, _ = toy_runs
    other_users = _record(tmp_path / "d.json", "D", {"ndcg@10": np.ones(3)}, users=["1", "2", "3"])
    with pytest.raises(CompareError, match="different users"):
        compare_files(paths[:1] + [other_users], str(tmp_path))
    other_data = _record(tmp_path / "e.json", "E", {"ndcg@10": np.ones(40)}, dataset="ml-1m")
    with pytest.raises(CompareError, match="different datasets"):
        compare_files(paths[:1] + [other_data], str(tmp_path))
    with pytest.raises(CompareError, match="labelled A"):
        compare_files([paths[0], paths[0]], str(tmp_path))
    with pytest.raises(CompareError, match="reference run"):
        compare_files(paths, str(tmp_path), reference="Z")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(CompareError, match="broken.json"):
        load_run(str(tmp_path / "broken.json"))


def test_the_time_table_gives_medians_and_speed_ups_over_the_reference(toy_runs, tmp_path):
    paths, _ = toy_runs
    clocks = {  # training epochs, validation passes (seconds)
        "A": ([2.0, 9.0, 1.0], [0.5, 0.25, 0.75]),  # medians 2 and 0.5
        "B": ([0.5, 0.25, 0.5, 1.5], [0.125]),  # medians 0.5 and 0.125
    }
    for path, (label, (train, valid)) in zip(paths, clocks.items()):
        record = json.loads(open(path).read())
        timings = {"fit_seconds": 1.0, "train_epoch_seconds": train, "valid_epoch_seconds": valid}
        record.update(trainer=f"{label}Trainer", device="cpu (test)", timings=timings)
        open(path, "w").write(json.dumps(record))

    def rows(text):
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()]
        return {row[0]: row[1:] for row in cells if len(row) == 8}

    table = compare_files(paths, str(tmp_path))
    assert table.markdown.endswith(table.time_markdown)
    time_table = rows(table.time_markdown)
    assert time_table["model"][-2:] == ["epoch speed-up vs A", "validation speed-up vs A"]
    assert time_table["A"] == ["ATrainer", "cpu (test)", "3", "2", "0.5", "1.00x", "1.00x"]
    assert time_table["B"] == ["BTrainer", "cpu (test)", "4", "0.5", "0.125", "4.00x", "4.00x"]
    assert time_table["C"] == ["-"] * 7  # a record without timings
    against_b = rows(compare_files(paths, str(tmp_path), reference="B").time_markdown)
    assert against_b["A"][-2:] == ["0.25x", "0.25x"]
    assert "s/epoch" not in compare_files(paths, str(tmp_path), clocks=False).markdown


def test_the_legend_says_when_no_run_kept_per_user_values(toy_runs, tmp_path):
    paths, _ = toy_runs

    def drop_per_user(path):
        record = json.loads(open(path).read())
        open(path, "w").write(json.dumps({k: v for k, v in record.items() if k != "per_user"}))

    drop_per_user(paths[0])  # B and C still carry theirs: tested over their 40 users
    assert "t-test over 40 test users" in compare_files(paths, str(tmp_path)).legend
    for path in paths[1:]:
        drop_per_user(path)
    legend = compare_files(paths, str(tmp_path)).legend
    assert "No significance tests: the runs kept no per-user values" in legend


def test_gzipped_records_read_like_plain_ones(toy_runs, tmp_path):
    paths, _ = toy_runs
    packed = tmp_path / "A.json.gz"
    with open(paths[0], "rb") as plain, gzip.open(packed, "wb") as f:
        f.write(plain.read())
    run, again = load_run(str(packed)), load_run(paths[0])
    assert run.test_result == again.test_result and run.users == again.users
    np.testing.assert_array_equal(run.per_user["ndcg@10"], again.per_user["ndcg@10"])
    whole = packed.read_bytes()
    for broken in (whole[:20], whole[:30] + bytes(255 - b for b in whole[30:60]) + whole[60:]):
        packed.write_bytes(broken)  # cut short, as by a crash, or corrupted
        with pytest.raises(CompareError, match="A.json.gz: cannot read"):
            load_run(str(packed))


def test_compare_two_real_runs_from_the_command_line(fast_config, tmp_path, capsys):
    config = dict(
        fast_config, epochs=3, metrics=["NDCG", "Recall", "ItemCoverage"], topk=[10], save_per_user=True
    )
    records = [run(model, "ml-small", config_dict=config)["record"] for model in ("BPR", "Pop")]
    out = tmp_path / "cmp"
    assert main(["compare", *records, "--output", str(out), "--boxplot", "ndcg@10"]) == 0
    printed = capsys.readouterr().out
    assert "| BPR |" in printed and "| Pop |" in printed
    assert (out / "comparison_ndcg_at_10.png").stat().st_size > 1000

    # the marks, recomputed from the records by hand (one comparison: no correction)
    per_user = {}
    for path in records:
        record = json.loads(open(path).read())
        order = np.argsort(record["per_user"]["users"])
        per_user[record["model"]] = {
            k: np.asarray(v)[order] for k, v in record["per_user"]["metrics"].items()
        }
    rows = {row["model"]: row for row in csv.DictReader(open(out / "comparison.csv"))}
    for metric in ("ndcg@10", "recall@10"):
        best, other = sorted(rows, key=lambda m: -float(rows[m][metric]))
        p = stats.ttest_rel(per_user[best][metric], per_user[other][metric]).pvalue
        assert float(rows[other][f"{metric} p"]) == pytest.approx(p)
        line = next(line for line in printed.splitlines() if line.startswith(f"| {other} |"))
        marked = [cell.strip() for cell in line.split("|")[2:-1]]
        assert sum(c.endswith("*") and not c.endswith("**") for c in marked) == sum(
            stats.ttest_rel(per_user[best][m], per_user[other][m]).pvalue < 0.05
            for m in ("ndcg@10", "recall@10")
            if float(rows[other][m]) != float(rows[best][m])
        )
    assert rows["BPR"]["itemcoverage@10 p"] == ""
    assert "| BPR | Trainer | cpu (" in printed and "| Pop | TraditionalTrainer | cpu (" in printed
    parameters = json.loads(open(records[0]).read())["parameters"]  # BPR: two embedding tables
    assert parameters["total"] == parameters["user_embedding"] + parameters["item_embedding"] > 0


def test_params_reports_half_the_branch_parameters(small_data, workdir, capsys):
    sizes = ["--projection_size=32", "--branch_layers=[16,8]", "--embedding_size=4"]
    args = ["params", "--model", "CoBraR", "--dataset", "ml-small", "--vs", "DMF"]
    assert main(args + [f"--data_path={small_data}", "--state=WARNING", *sizes]) == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[3:]}
    cobrar_branch, dmf_branch = map(int, lines["branch"])
    assert cobrar_branch == (32 * 16 + 16) + (16 * 8 + 8) + (8 * 4 + 4)
    assert dmf_branch == 2 * cobrar_branch
    cobrar_projection, dmf_projection = map(int, lines["projections"])
    assert cobrar_projection - dmf_projection == 2 * 32  # CoBraR's projections have a bias
