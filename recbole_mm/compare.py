"""Compare runs: one table of test metrics with paired significance tests over users.

Input: the JSON records runs write next to their checkpoints (:mod:`recbole_mm.record`); the
significance tests need the per-user values of ``save_per_user: True`` runs.

For every metric (column) the best run is the one with the best mean (largest, or smallest for
metrics where smaller is better, such as ARP, PopRSP, GiniIndex), shown in **bold**. Each other
run is compared with the *reference* run of that column (the best run, or a fixed run given as
``reference``) by a paired test over the test users: a two-sided paired t-test
(``scipy.stats.ttest_rel``) or, as an option, the Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``). The p-values of one column are Bonferroni-corrected over its
comparisons (p x number of compared runs, at most 1). A ``*`` marks a run whose difference from
the reference is significant at ``alpha`` after correction. Metrics without per-user values
(ItemCoverage, GiniIndex, PopRSP, ...) or runs without them get no test and no mark.

Under the metrics, a second table gives each run's clocks from its record (trainer, device, median
seconds per training epoch and per validation pass) and its speed-up over the reference run (or,
without one, the first run): the reference's seconds over the run's.
"""

import csv
import gzip
import io
import json
import os
import zlib
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from recbole_mm.files import replace_atomically

TESTS = ("ttest", "wilcoxon")


class CompareError(ValueError):
    """Runs that cannot be compared (unreadable record, different data, duplicate labels)."""


@dataclass
class Run:
    """One run's record, as far as a comparison needs it."""

    label: str
    path: str
    dataset: str
    test_result: dict
    users: list = None  # user tokens of the per-user values, or None
    per_user: dict = field(default_factory=dict)  # {metric: numpy array [users]}
    timing: "Timing" = None  # the record's clocks, or None (a record without timings)


@dataclass
class Timing:
    """A run's clocks, from its record: medians over its epochs, in seconds."""

    trainer: str  # the trainer class that ran ("-" in records older than that field)
    device: str
    epochs: int
    epoch_s: float  # median training epoch
    valid_s: float  # median validation pass, or None when the run was never validated

    @classmethod
    def from_record(cls, record):
        """The Timing of a run record (dict), or None when it kept no training epochs."""
        timings = record.get("timings") or {}
        train, valid = timings.get("train_epoch_seconds"), timings.get("valid_epoch_seconds")
        if not train:
            return None
        return cls(
            trainer=record.get("trainer", "-"),
            device=record.get("device", "-"),
            epochs=len(train),
            epoch_s=float(np.median(train)),
            valid_s=float(np.median(valid)) if valid else None,
        )


def read_record(path):
    """A run record as saved (dict): JSON, or gzipped JSON when ``path`` ends with ``.gz``."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, EOFError, zlib.error, json.JSONDecodeError) as error:
        raise CompareError(f"{path}: cannot read the run record: {error}") from error


def load_run(path, label=None):
    """Read a run record (:func:`read_record`) into a :class:`Run`; ``label`` defaults to its
    ``label`` or model."""
    record = read_record(path)
    missing = [key for key in ("model", "dataset", "test_result") if key not in record]
    if missing:
        raise CompareError(
            f"{path}: not a recbole_mm run record (no {', '.join(missing)}); pass the .json file "
            "written next to a run's checkpoint"
        )
    if not record["test_result"]:
        raise CompareError(f"{path}: the run has no test result (was it run with saved=False?)")
    per_user = record.get("per_user") or {}
    return Run(
        label=label or record.get("label") or record["model"],
        path=str(path),
        dataset=record["dataset"],
        test_result={k.lower(): float(v) for k, v in record["test_result"].items()},
        users=per_user.get("users"),
        per_user={k.lower(): np.asarray(v, dtype=np.float64) for k, v in per_user.get("metrics", {}).items()},
        timing=Timing.from_record(record),
    )


def smaller_is_better(metric):
    """Whether a lower value of ``metric`` (e.g. ``arp@10``) is better, by RecBole's register."""
    from recbole.evaluator.register import smaller_metrics

    from recbole_mm.registry import registry

    registry.load()  # plugin metrics declare their direction when they register
    return metric.split("@")[0].lower() in smaller_metrics


def paired_p_value(a, b, test="ttest"):
    """Two-sided p-value of a paired test between per-user values ``a`` and ``b`` (float).

    Identical samples (every difference 0) give 1.0.
    """
    if test not in TESTS:
        raise CompareError(f"unknown test '{test}'; choose one of {', '.join(TESTS)}")
    if np.all(a == b):
        return 1.0
    if test == "ttest":
        return float(stats.ttest_rel(a, b).pvalue)
    return float(stats.wilcoxon(a, b).pvalue)


@dataclass
class Cell:
    """One table cell: the mean, and (when tested) the corrected p-value vs the reference."""

    mean: float
    best: bool = False
    p_value: float = None
    significant: bool = False


@dataclass
class Comparison:
    """The comparison table: ``cells[label][metric]`` (Cell or None when the run lacks it)."""

    labels: list
    metrics: list
    cells: dict
    dataset: str
    test: str
    alpha: float
    reference: str
    n_users: int
    timings: dict = field(default_factory=dict)  # {label: Timing or None}

    @property
    def markdown(self):
        """The table as Markdown (str), with a legend under it, then the time table."""
        rows = [[label] + [_format(self.cells[label][m]) for m in self.metrics] for label in self.labels]
        text = _markdown_table(["model"] + self.metrics, rows) + "\n\n" + self.legend + "\n"
        return text + ("\n" + self.time_markdown if any(self.timings.values()) else "")

    @property
    def time_markdown(self):
        """The runs' clocks as Markdown (str): medians per epoch, and speed-ups over the
        reference run (or the first run)."""
        base_label = self.reference or self.labels[0]
        base = self.timings.get(base_label)
        header = ["model", "trainer", "device", "epochs", "s/epoch", "s/validation",
                  f"epoch speed-up vs {base_label}", f"validation speed-up vs {base_label}"]
        rows = []
        for label in self.labels:
            timing = self.timings.get(label)
            rows.append([label] + ["-"] * (len(header) - 1) if timing is None else [
                label, timing.trainer, timing.device, str(timing.epochs), _seconds(timing.epoch_s),
                _seconds(timing.valid_s), _speed_up(base and base.epoch_s, timing.epoch_s),
                _speed_up(base and base.valid_s, timing.valid_s),
            ])
        devices = {timing.device for timing in self.timings.values() if timing}
        note = (" The runs ran on different devices: their ratios compare the devices too."
                if len(devices) > 1 else "")
        legend = (
            "Clocks from the run records: medians over each run's training epochs and validation "
            f"passes; speed-up = {base_label}'s seconds / the run's." + note
        )
        return _markdown_table(header, rows) + "\n\n" + legend + "\n"

    @property
    def legend(self):
        """What bold and ``*`` mean, with the test, the correction and the data (str)."""
        if not self.n_users:
            return (
                f"Test results on {self.dataset}. Bold: best mean per metric. No significance "
                "tests: the runs kept no per-user values (run them with save_per_user: True)."
            )
        test = "paired two-sided t-test" if self.test == "ttest" else "Wilcoxon signed-rank test"
        against = (
            f"the reference run {self.reference}" if self.reference else "the best run (bold)"
        )
        return (
            f"Test results on {self.dataset}. Bold: best mean per metric. *: different from "
            f"{against} of the column at alpha = {self.alpha} ({test} over "
            f"{self.n_users} test users, Bonferroni-corrected over the runs compared in the "
            "column). Metrics without per-user values are not tested."
        )

    def csv(self):
        """The table as CSV (str): a mean column and a corrected p-value column per metric."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["model"] + [f"{m}{suffix}" for m in self.metrics for suffix in ("", " p")])
        for label in self.labels:
            row = [label]
            for metric in self.metrics:
                cell = self.cells[label][metric]
                row.append("" if cell is None else repr(cell.mean))
                row.append("" if cell is None or cell.p_value is None else repr(cell.p_value))
            writer.writerow(row)
        return buffer.getvalue()


def _markdown_table(header, rows):
    """A Markdown table (str) of ``header`` and ``rows`` (lists of str)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _seconds(value):
    return "-" if value is None else f"{value:.4g}"


def _speed_up(base_seconds, seconds):
    return f"{base_seconds / seconds:.2f}x" if base_seconds and seconds else "-"


def _format(cell):
    if cell is None:
        return "-"
    text = f"{cell.mean:.4f}"
    if cell.best:
        text = f"**{text}**"
    return text + ("*" if cell.significant else "")


def compare(runs, metrics=None, test="ttest", alpha=0.05, reference=None, clocks=True):
    """Build the comparison table of ``runs`` (list of :class:`Run`).

    Args:
        metrics (list of str or None): columns (e.g. ``ndcg@10``); default: every test metric of
            the first run, in its order.
        test (str): ``ttest`` or ``wilcoxon``.
        alpha (float): significance level after Bonferroni correction.
        reference (str or None): label of the run every other run is tested against; default:
            the best run of each column.
        clocks (bool): keep the runs' timings for the time table under the metrics.

    Returns:
        Comparison
    """
    if len(runs) < 2:
        raise CompareError("compare needs at least two runs")
    if test not in TESTS:
        raise CompareError(f"unknown test '{test}'; choose one of {', '.join(TESTS)}")
    labels = [run.label for run in runs]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise CompareError(
            f"several runs are labelled {', '.join(duplicates)}; give each its own label "
            "(--labels a,b,c)"
        )
    if reference is not None and reference not in labels:
        raise CompareError(f"reference run '{reference}' is not among the runs {labels}")
    datasets = {run.dataset for run in runs}
    if len(datasets) > 1:
        raise CompareError(f"the runs were evaluated on different datasets {sorted(datasets)}")
    metrics = [m.lower() for m in (metrics or runs[0].test_result)]
    by_label = {run.label: run for run in runs}
    _check_users(runs)

    cells = {label: {} for label in labels}
    for metric in metrics:
        present = [run for run in runs if metric in run.test_result]
        if not present:
            raise CompareError(
                f"no run has a test value of '{metric}'; available: {sorted(runs[0].test_result)}"
            )
        for run in runs:
            value = run.test_result.get(metric)
            cells[run.label][metric] = None if value is None else Cell(value)
        pick = min if smaller_is_better(metric) else max
        best = pick(present, key=lambda run: run.test_result[metric])
        for run in present:  # ties: every run with the best mean is bold
            cells[run.label][metric].best = run.test_result[metric] == best.test_result[metric]
        anchor = by_label[reference] if reference else best
        _test_column(metric, anchor, present, cells, test, alpha)
    n_users = next((len(run.users) for run in runs if run.users), 0)  # the users tests ran over
    timings = {run.label: run.timing for run in runs} if clocks else {}
    return Comparison(labels, metrics, cells, runs[0].dataset, test, alpha, reference, n_users, timings)


def _check_users(runs):
    """Per-user values must come from the same test users, in any order."""
    with_users = [run for run in runs if run.users is not None]
    for run in with_users[1:]:
        if set(run.users) != set(with_users[0].users):
            raise CompareError(
                f"{run.path} and {with_users[0].path} were tested on different users; compare "
                "runs of the same dataset and split"
            )


def _aligned(run, metric, users):
    """The run's per-user values of ``metric`` in the order of ``users`` (array), or None."""
    if metric not in run.per_user:
        return None
    position = {user: i for i, user in enumerate(run.users)}
    return run.per_user[metric][[position[user] for user in users]]


def _test_column(metric, anchor, present, cells, test, alpha):
    """Set the p-values and marks of one column: each run against ``anchor``."""
    others = [run for run in present if run is not anchor]
    reference_values = _aligned(anchor, metric, anchor.users) if anchor.users else None
    if reference_values is None or not others:
        return
    for run in others:
        values = _aligned(run, metric, anchor.users) if run.users else None
        if values is None:
            continue
        p_value = min(paired_p_value(reference_values, values, test) * len(others), 1.0)
        cell = cells[run.label][metric]
        cell.p_value = p_value
        cell.significant = p_value < alpha


def boxplot(runs, metric, path):
    """Box plots of the per-user values of ``metric``, one box per run, saved as PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    missing = [run.label for run in runs if metric not in run.per_user]
    if missing:
        raise CompareError(
            f"runs {missing} have no per-user values of '{metric}'; run them with "
            "save_per_user: True and the metric in 'metrics'"
        )
    figure, axis = plt.subplots(figsize=(1.2 * len(runs) + 2, 4))
    axis.boxplot([run.per_user[metric] for run in runs], showmeans=True)
    axis.set_xticks(range(1, len(runs) + 1), [run.label for run in runs], rotation=30, ha="right")
    axis.set_ylabel(f"per-user {metric}")
    axis.set_title(f"{runs[0].dataset}: per-user {metric} (test)")
    figure.tight_layout()
    replace_atomically(path, lambda f: figure.savefig(f, format="png", dpi=120), binary=True)
    plt.close(figure)
    return path


def compare_files(
    record_paths,
    out_dir,
    stem="comparison",
    test="ttest",
    alpha=0.05,
    reference=None,
    labels=None,
    metrics=None,
    boxplot_metric=None,
    clocks=True,
):
    """Compare the runs of ``record_paths``; write ``<stem>.md``, ``<stem>.csv`` (and a box plot).

    Args:
        record_paths (list of str): run records (JSON).
        out_dir (str): folder of the outputs (created).
        labels (list of str or None): one label per record (default: its label or model).
        boxplot_metric (str or None): also write ``<stem>_<metric>.png``.
        stem, test, alpha, reference, metrics, clocks: see :func:`compare`.

    Returns:
        Comparison
    """
    if labels is not None and len(labels) != len(record_paths):
        raise CompareError(f"{len(labels)} labels for {len(record_paths)} runs: give one per run")
    runs = [load_run(p, labels[i] if labels else None) for i, p in enumerate(record_paths)]
    table = compare(runs, metrics=metrics, test=test, alpha=alpha, reference=reference, clocks=clocks)
    os.makedirs(out_dir, exist_ok=True)
    replace_atomically(os.path.join(out_dir, f"{stem}.md"), lambda f: f.write(table.markdown))
    replace_atomically(os.path.join(out_dir, f"{stem}.csv"), lambda f: f.write(table.csv()))
    if boxplot_metric:
        name = boxplot_metric.lower().replace("@", "_at_")
        boxplot(runs, boxplot_metric.lower(), os.path.join(out_dir, f"{stem}_{name}.png"))
    return table
