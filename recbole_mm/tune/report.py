"""Tables, the best-so-far plot and the summary of a search.

A trial is described by a row (dict): ``model``, ``trial`` (1-based, in the order Ray created
the trials), ``trial_id``, ``status``, ``epochs`` (epochs trained when it last reported),
``best_valid_score`` (its best validation score), ``seconds``, ``config`` (the sampled values, as
RecBole got them), ``error`` and ``trial_dir``. Statuses:

- ``completed``: trained every epoch of the budget;
- ``early_stopped``: ended by RecBole's early stopping (``stopping_step``);
- ``pruned``: stopped by the scheduler (ASHA) because it trailed the other trials;
- ``failed``: raised an error (``error`` says which);
- ``running`` / ``pending``: still in progress (the tables are rewritten as trials end).
"""

import csv
import json
import os

import yaml

from recbole_mm.files import replace_atomically
from recbole_mm.tune.trainable import FAILURE_FILE

SELECTABLE = ("completed", "early_stopped", "pruned")  # failed trials are never selected
ROW_COLUMNS = ("model", "trial", "trial_id", "status", "epochs", "best_valid_score")
TAIL_COLUMNS = ("seconds", "error", "trial_dir")


def trial_status(ray_status, last_result, failed=False):
    """The status of a trial (str, see the module docstring) from Ray's status and last report."""
    if failed or ray_status == "ERROR":
        return "failed"
    if ray_status == "TERMINATED":
        if last_result.get("early_stopped"):
            return "early_stopped"
        return "completed" if last_result.get("finished") else "pruned"
    return "pending" if ray_status == "PENDING" else "running"


def _error_text(trial_dir, failed):
    """The one-line reason a failed trial gave (the trainable's, else the end of Ray's)."""
    if not failed or not trial_dir:
        return ""
    for name, last_line in ((FAILURE_FILE, False), ("error.txt", True)):
        path = os.path.join(trial_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle if line.strip()]
            if lines:
                return lines[-1] if last_line else lines[0]
    return f"see the logs in {trial_dir}"


def _creation_index(trial):
    """Ray's trial counter: the number that starts the trial's experiment tag."""
    head = str(trial.experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def trial_rows(model, trials, space, failed_trial=None):
    """Rows (list of dict) of Ray ``trials`` of ``model``'s search, in creation order.

    Args:
        model (str): the model's name.
        trials (list of ray.tune.experiment.Trial): the experiment's trials.
        space (SearchSpace): decodes each trial's sampled values.
        failed_trial (Trial or None): a trial Ray is failing right now (its status is set only
            after the callbacks ran).
    """
    rows = []
    for number, trial in enumerate(sorted(trials, key=_creation_index), start=1):
        result = trial.last_result or {}
        status = trial_status(trial.status, result, trial is failed_trial)
        seconds = result.get("time_total_s")
        rows.append({
            "model": model,
            "trial": number,
            "trial_id": trial.trial_id,
            "status": status,
            "epochs": result.get("epoch"),
            "best_valid_score": result.get("best_valid_score"),
            "config": space.decode(trial.config),
            "seconds": round(seconds, 2) if seconds is not None else None,
            "error": _error_text(trial.local_path, status == "failed"),
            "trial_dir": trial.local_path,
        })
    return rows


def best_row(rows, mode):
    """The selectable row with the best ``best_valid_score`` (dict or None); ties: earliest."""
    candidates = [r for r in rows if r["status"] in SELECTABLE and r["best_valid_score"] is not None]
    if not candidates:
        return None
    sign = 1 if mode == "max" else -1
    return max(candidates, key=lambda r: (sign * r["best_valid_score"], -r["trial"]))


def status_counts(rows):
    """{status: number of rows} (dict)."""
    counts = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def _cell(value):
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return "" if value is None else value


def write_rows_csv(path, rows, metric):
    """Write ``rows`` as CSV (a column per sampled key; ``best_valid_score`` named after ``metric``)."""
    params = []
    for row in rows:
        params += [key for key in row["config"] if key not in params]
    header = [c if c != "best_valid_score" else f"best_valid_{metric}" for c in ROW_COLUMNS]
    header += params + list(TAIL_COLUMNS)

    def write(handle):
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(
                [_cell(row[c]) for c in ROW_COLUMNS]
                + [_cell(row["config"].get(p)) for p in params]
                + [_cell(row[c]) for c in TAIL_COLUMNS]
            )

    replace_atomically(path, write)


def write_rows_json(path, rows):
    """Write ``rows`` as JSON (exact values)."""
    replace_atomically(path, lambda f: f.write(json.dumps(rows, indent=2) + "\n"))


def read_rows_json(path):
    """The rows :func:`write_rows_json` wrote (list of dict; [] when the file does not exist)."""
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def best_so_far(rows, mode):
    """[best ``best_valid_score`` among trials 1..i for each trial i] (None before the first)."""
    best, curve = None, []
    for row in sorted(rows, key=lambda r: r["trial"]):
        score = row["best_valid_score"] if row["status"] in SELECTABLE else None
        if score is not None and (best is None or (score > best if mode == "max" else score < best)):
            best = score
        curve.append(best)
    return curve


def plot_best_so_far(rows_by_model, metric, mode, path, title):
    """Plot the best-so-far validation ``metric`` against the trial number, a line per model (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for model, rows in rows_by_model.items():
        curve = best_so_far(rows, mode)
        points = [(i, v) for i, v in enumerate(curve, start=1) if v is not None]
        if points:
            axes.plot(*zip(*points), marker="o", drawstyle="steps-post", label=model)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trial")
    axes.set_ylabel(f"best validation {metric} so far")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    replace_atomically(path, lambda f: figure.savefig(f, format="png", dpi=120), binary=True)
    plt.close(figure)


def _number(value):
    return "-" if value is None else f"{value:.4f}"


def summary_markdown(title, models, metric, comparison=None):
    """The search's summary (Markdown str).

    Args:
        title (str): the first heading.
        models (dict): {model: {"rows": rows, "best": best row or None, "record": path or None,
            "best_config": path or None, "test": test value of ``metric`` or None}}.
        metric (str): the validation metric.
        comparison (str or None): the comparison table (Markdown) of the test runs.
    """
    intro = (
        f"Selection on validation `{metric}` only; each model's best configuration was then "
        "trained again and evaluated on test once."
    )
    header = (
        "| model | trials | completed | early-stopped | pruned | failed | best trial | "
        f"best valid {metric} | test {metric} | best config | test record |"
    )
    lines = [f"# {title}", "", intro, "", header, "|" + " --- |" * 11]
    for model, info in models.items():
        counts = status_counts(info["rows"])
        best = info["best"]
        lines.append(
            f"| {model} | {len(info['rows'])} | {counts.get('completed', 0)} | "
            f"{counts.get('early_stopped', 0)} | {counts.get('pruned', 0)} | "
            f"{counts.get('failed', 0)} | {best['trial'] if best else '-'} | "
            f"{_number(best['best_valid_score'] if best else None)} | {_number(info['test'])} | "
            f"{info['best_config'] or '-'} | {info['record'] or '-'} |"
        )
    if comparison:
        lines += ["", "## Test metrics at each model's best-valid configuration", "", comparison]
    return "\n".join(lines) + "\n"
