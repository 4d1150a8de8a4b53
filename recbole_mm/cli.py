"""Command-line entry points: ``run_recbole``, ``recbole-mm`` and ``python -m recbole_mm``.

``run_recbole`` takes RecBole's arguments: ``--model``, ``--dataset``, ``--config_files`` (several
files separated by spaces), ``--plugin_path`` and any ``--key=value`` config override.
``recbole-mm`` groups the toolkit's commands as subcommands (``run``, ``models``, ``demo``,
``convert``, ``extract``, ``compare``, ``params``, ``tune``, ``search``, ``recommend``).
"""

import argparse
import sys

from recbole_mm.compare import TESTS, CompareError
from recbole_mm.config import ConfigError
from recbole_mm.data.features import FeatureError
from recbole_mm.dataset_tools.convert import ConversionError, add_convert_parser
from recbole_mm.dataset_tools.encoders.text import EncoderError
from recbole_mm.dataset_tools.extract import ExtractionError, add_extract_parser
from recbole_mm.registry import PluginError, UnknownModelError, registry
from recbole_mm.search.data import SearchError
from recbole_mm.tune import TuneError
from recbole_mm.tune.command import add_tune_parser

DEMO_MODELS = ("BPR", "LightGCN", "LFMMLGCN")


def _add_run_arguments(parser, training=True):
    parser.add_argument("--model", "-m", help="model name (RecBole's or a plugin's)")
    parser.add_argument("--dataset", "-d", help="dataset name; ml-100k ships with RecBole")
    parser.add_argument(
        "--config_files", help="YAML config files, separated by spaces (later ones win)"
    )
    parser.add_argument("--plugin_path", help="extra plugin folder(s), separated by ':'")
    if training:
        parser.add_argument(
            "--no_save", action="store_true", help="keep no checkpoint (test uses the last epoch)"
        )


def _cmd_args(args, extra):
    """Config overrides from the command line: ``extra`` plus ``--plugin_path``."""
    cmd = list(extra)
    if args.plugin_path:
        cmd.append(f"--plugin_path={args.plugin_path}")
    return cmd


def format_table(rows, columns, row_header):
    """A plain-text table of ``rows`` ({row name: {column: value}}) (str)."""
    header = [row_header] + list(columns)
    body = [
        [name] + [_cell(values.get(column)) for column in columns] for name, values in rows.items()
    ]
    widths = [max(len(str(line[i])) for line in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)) for line in body]
    return "\n".join(lines)


def _cell(value):
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def results_table(result):
    """Best-valid and test metrics of one run, a metric per row (str)."""
    metrics = list(result["test_result"]) or list(result["best_valid_result"])
    rows = {
        metric: {
            "best valid": result["best_valid_result"].get(metric),
            "test": result["test_result"].get(metric),
        }
        for metric in metrics
    }
    title = f"{result['model']} on {result['dataset']}"
    return f"{title}\n{format_table(rows, ['best valid', 'test'], 'metric')}"


def _run(args, extra):
    from recbole_mm.quick_start import run

    config_files = args.config_files.split() if args.config_files else None
    result = run(
        model=args.model,
        dataset=args.dataset,
        config_file_list=config_files,
        saved=not args.no_save,
        cmd_args=_cmd_args(args, extra),
    )
    print(results_table(result))
    print(f"record: {result['record']}")
    return result


def _models(args, extra):
    registry.load(args.plugin_path)
    for name in registry.model_names():
        print(f"{name:24s} {registry.model_source(name)}")


def _demo(args, extra):
    """Train the demo models on ml-100k (shipped in the recbole wheel) and compare them."""
    from recbole_mm.quick_start import run

    rows = {}
    for model in args.models.split(","):
        result = run(
            model=model,
            dataset="ml-100k",
            config_dict={"epochs": args.epochs, "seed": args.seed},
            cmd_args=list(extra),
        )
        rows[model] = dict(result["test_result"])
        rows[model]["valid " + result["valid_metric"]] = result["best_valid_score"]
        rows[model]["record"] = result["record"]
    columns = [c for c in next(iter(rows.values())) if c != "record"]
    print(f"\nml-100k, {args.epochs} epochs, seed {args.seed}: test metrics at the best-valid epoch")
    print(format_table(rows, columns, "model"))
    for model, values in rows.items():
        print(f"record of {model}: {values['record']}")
    return rows


def _compare(args, extra):
    from recbole_mm.compare import compare_files

    table = compare_files(
        args.records,
        args.output,
        stem=args.stem,
        test=args.test,
        alpha=args.alpha,
        reference=args.reference,
        labels=args.labels.split(",") if args.labels else None,
        metrics=args.metrics.split(",") if args.metrics else None,
        boxplot_metric=args.boxplot,
    )
    print(table.markdown)
    print(f"written: {args.output}/{args.stem}.md, .csv")
    return table


def _params(args, extra):
    from recbole.data import data_preparation

    from recbole_mm.config import Config
    from recbole_mm.params import dmf_like, parameter_report
    from recbole_mm.quick_start import create_dataset

    config_files = args.config_files.split() if args.config_files else None
    cmd_args = _cmd_args(args, extra)
    config = Config(args.model, args.dataset, config_files, cmd_args=cmd_args)
    dataset = data_preparation(config, create_dataset(config))[0]._dataset  # the training split
    reports = {args.model: parameter_report(config.model_class(config, dataset))}
    for other in args.vs.split(",") if args.vs else []:
        same_architecture = dmf_like(config) if (args.model, other) == ("CoBraR", "DMF") else None
        other_config = Config(other, args.dataset, config_files, same_architecture, cmd_args=cmd_args)
        reports[other] = parameter_report(other_config.model_class(other_config, dataset))
    parts = list(dict.fromkeys(part for report in reports.values() for part in report))
    parts.append(parts.pop(parts.index("total")))
    rows = {part: {name: report.get(part) for name, report in reports.items()} for part in parts}
    print(f"trainable parameters on {args.dataset}")
    print(format_table(rows, list(reports), "part"))
    return reports


def _search(args, extra):
    from recbole_mm.search.inference import format_items, search

    rows = search(args.checkpoint, args.query, user=args.user, k=args.k)
    print(format_items(rows))
    return rows


def _recommend(args, extra):
    from recbole_mm.search.inference import format_items, recommend

    rows = recommend(args.checkpoint, args.user, k=args.k)
    print(format_items(rows))
    return rows


def _parser(prog):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="train and evaluate a model (as run_recbole)")
    _add_run_arguments(run_parser)
    run_parser.set_defaults(handler=_run)
    models_parser = sub.add_parser("models", help="list every available model and its source")
    models_parser.add_argument("--plugin_path", help="extra plugin folder(s)")
    models_parser.set_defaults(handler=_models)
    demo_parser = sub.add_parser(
        "demo", help="train BPR, LightGCN and LF-MMLGCN (with text features) on ml-100k, print a table"
    )
    demo_parser.add_argument("--epochs", type=int, default=20)
    demo_parser.add_argument("--seed", type=int, default=2020)
    demo_parser.add_argument("--models", default=",".join(DEMO_MODELS))
    demo_parser.set_defaults(handler=_demo)
    add_convert_parser(sub)
    add_extract_parser(sub)

    compare_parser = sub.add_parser(
        "compare", help="one table of several runs' test metrics, with paired significance tests"
    )
    compare_parser.add_argument(
        "records", nargs="+", help="run records (.json beside checkpoints, or gzipped: .json.gz)"
    )
    compare_parser.add_argument("--labels", help="one label per record, comma-separated")
    compare_parser.add_argument("--metrics", help="columns, comma-separated (default: all)")
    compare_parser.add_argument("--test", choices=TESTS, default="ttest")
    compare_parser.add_argument("--alpha", type=float, default=0.05)
    compare_parser.add_argument(
        "--reference", help="label of the run others are tested against (default: the best)"
    )
    compare_parser.add_argument("--output", default=".", help="folder of <stem>.md and .csv")
    compare_parser.add_argument("--stem", default="comparison")
    compare_parser.add_argument("--boxplot", help="also plot the per-user values of this metric")
    compare_parser.set_defaults(handler=_compare)

    params_parser = sub.add_parser(
        "params", help="trainable parameters of a model by part (CoBraR --vs DMF: same sizes)"
    )
    _add_run_arguments(params_parser, training=False)
    params_parser.add_argument(
        "--vs", help="models to count beside it, comma-separated (DMF gets CoBraR's architecture)"
    )
    params_parser.set_defaults(handler=_params)

    search_parser = sub.add_parser("search", help="top-k items of a text query (UnifiedSearchRec)")
    search_parser.add_argument("--checkpoint", required=True, help="a trained model's .pth")
    search_parser.add_argument("--query", required=True)
    search_parser.add_argument("--user", help="user token: personalised search")
    search_parser.add_argument("-k", type=int, default=10)
    search_parser.set_defaults(handler=_search)
    recommend_parser = sub.add_parser("recommend", help="a user's top-k items (any model)")
    recommend_parser.add_argument("--checkpoint", required=True, help="a trained model's .pth")
    recommend_parser.add_argument("--user", required=True, help="user token")
    recommend_parser.add_argument("-k", type=int, default=10)
    recommend_parser.set_defaults(handler=_recommend)
    add_tune_parser(sub)
    return parser


def _invoke(handler, args, extra):
    try:
        handler(args, extra)
    except (
        UnknownModelError, PluginError, ConfigError, ConversionError, ExtractionError,
        EncoderError, FeatureError, CompareError, SearchError, TuneError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    """``recbole-mm SUBCOMMAND ...``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args, extra = _parser("recbole-mm").parse_known_args(argv)
    if extra and args.command not in ("run", "demo", "params"):
        _parser("recbole-mm").error(f"unrecognized arguments: {' '.join(extra)}")
    return _invoke(args.handler, args, extra)


def run_recbole_main(argv=None):
    """``run_recbole --model=M --dataset=D [--key=value ...]``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="run_recbole", description="Train and evaluate a model.")
    _add_run_arguments(parser)
    args, extra = parser.parse_known_args(argv)
    return _invoke(_run, args, extra)
