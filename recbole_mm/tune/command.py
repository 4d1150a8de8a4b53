"""``recbole-mm tune``: the subcommand's arguments; the work is :func:`recbole_mm.tune.search.run_tune`."""

import os

HELP = "tune a model and baselines with Ray Tune (same budget), test each best config once, compare"


def _models(text):
    return [name.strip() for name in text.split(",") if name.strip()]


def add_tune_parser(sub):
    """Add the ``tune`` subcommand to the ``recbole-mm`` subparsers ``sub``."""
    parser = sub.add_parser("tune", help=HELP, description=HELP + ". See docs/tune.md.")
    parser.add_argument("--model", "-m", required=True, help="the model under test")
    parser.add_argument("--dataset", "-d", required=True, help="dataset name")
    parser.add_argument("--data-path", "--data_path", help="folder holding <dataset>/ (default: the config's)")
    parser.add_argument(
        "--config-files", "--config_files", nargs="+", default=[],
        help="YAML config files of every trial and test run (later ones win)",
    )
    parser.add_argument("--space", help="the model's search space (default: properties/tune/<model>.yaml)")
    parser.add_argument("--space-dir", help="folder of the baselines' <Model>.yaml spaces (default: properties/tune)")
    parser.add_argument(
        "--baselines", type=_models, default=[],
        help="comma-separated models tuned with the same budget, e.g. LightGCN,BPR",
    )
    parser.add_argument("--num-samples", type=int, default=8, help="trials per model (default 8)")
    parser.add_argument("--max-epochs", type=int, default=20, help="epochs per trial at most (default 20)")
    parser.add_argument(
        "--gpus-per-trial", type=float, default=None,
        help="GPUs per trial, fractions share a GPU (default: 1 if Ray sees GPUs, else 0)",
    )
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    parser.add_argument(
        "--max-concurrent-trials", type=int, default=None,
        help="at most this many trials at once (default: as many as the resources allow)",
    )
    parser.add_argument("--scheduler", choices=("asha", "fifo"), default="asha",
                        help="asha stops trailing trials early; fifo runs every trial out")
    parser.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA: keep the best 1/N at each rung")
    parser.add_argument("--search", choices=("random", "grid", "bayes"), default="random",
                        help="random sampling, the grid keys in order, or Optuna's TPE (bayes)")
    parser.add_argument("--address", help="an existing Ray cluster (default: start a local Ray)")
    parser.add_argument(
        "--output",
        help="folder of the results; the same folder resumes (default: saved/tune/<model>-<dataset>)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of every trial and searcher (default: the config's)")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2, 3), help="Ray Tune's console output")
    parser.set_defaults(handler=run_command)
    return parser


def run_command(args, extra):
    """Run the search the parsed ``args`` describe; print the summary and where the files are."""
    from recbole_mm.tune.search import TuneSettings, run_tune

    settings = TuneSettings(
        model=args.model, dataset=args.dataset, baselines=args.baselines,
        output=args.output or os.path.join("saved", "tune", f"{args.model}-{args.dataset}"),
        data_path=args.data_path, config_files=args.config_files, space=args.space,
        space_dir=args.space_dir, num_samples=args.num_samples, max_epochs=args.max_epochs,
        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial,
        max_concurrent_trials=args.max_concurrent_trials, scheduler=args.scheduler,
        grace_period=args.grace_period, reduction_factor=args.reduction_factor, search=args.search,
        address=args.address, seed=args.seed, verbose=args.verbose,
    )
    result = run_tune(settings)
    print(result["summary"])
    print(f"report: {result['report']}")
    return result
