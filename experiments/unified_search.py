"""Unified search + recommendation: UnifiedSearchRec against its baselines, both tasks.

One dataset per call; finished runs are kept in OUTPUT/DATASET/runs and skipped. The commands of
the committed results, with the conversion of their data, are in docs/results/unified_search/README.md::

    python experiments/unified_search.py --dataset ml-100k --epochs 20 --stopping-step 3 \
        --config-files experiments/unified_search.yaml

Methods, all on the same split (RecBole's, from the config; default: each user's interactions
randomly split 80/10/10) and the same searches (``search_recipe``: queries from item genres or tags):

- ``multi-task``: UnifiedSearchRec, fixed weights (rec 1, search 0.1), selected on validation multitask_ndcg@10;
- ``multi-task (uncertainty)``, ``multi-task (PCGrad)``: the other loss weightings;
- ``recommendation only``: search weight 0, search results ranked by the user alone (ignores the
  query), selected on validation NDCG@10;
- ``search only``: recommendation weight 0, selected on validation search_ndcg@10;
- ``BM25``: bm25s over the item text the text modality was made from (no training);
- ``dense (frozen encoder)``: cosine of the frozen text encoder's query and item vectors.

Every trained method selects its epoch on validation (early stopping on its valid_metric) and is
evaluated on test once. Output: OUTPUT/DATASET/results.md (the table) and results.json.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from recbole_mm.config import Config
from recbole_mm.dataset_tools.encoders.text import TextEncoder
from recbole_mm.dataset_tools.extract import item_texts
from recbole_mm.files import replace_atomically
from recbole_mm.model.multimodal import feature_store, load_item_features
from recbole_mm.plugins.unifiedsearchrec import text_encoder_settings
from recbole_mm.quick_start import load_data, run
from recbole_mm.record import describe_device
from recbole_mm.search.baselines import BM25Search, DenseSearch
from recbole_mm.search.data import SearchLog
from recbole_mm.search.evaluation import SearchEvaluator, search_metric_names

MODEL = "UnifiedSearchRec"
VARIANTS = {
    "multi-task": {},
    "multi-task (uncertainty)": {"loss_weighting": "uncertainty"},
    "multi-task (PCGrad)": {"loss_weighting": "pcgrad"},
    "recommendation only": {"search_weight": 0.0, "search_ranking": "user", "valid_metric": "NDCG@10"},
    "search only": {"rec_weight": 0.0, "valid_metric": "search_ndcg@10"},
}
SEARCH_COLUMNS = ["search_ndcg@10", "search_recall@20", "search_map@10", "search_precision@10"]
REC_COLUMNS = ["ndcg@10", "recall@20"]


def _config_dict(args):
    config = {"seed": args.seed, "epochs": args.epochs, "stopping_step": args.stopping_step,
              "topk": [10, 20], "metrics": ["NDCG", "Recall"], "show_progress": False}
    if args.data_path:
        config["data_path"] = str(Path(args.data_path).resolve())
    return config


def _slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def train_variants(args, out):
    """Train (or reuse) every variant; {name: {"valid": ..., "test": ..., "record": path}}."""
    results = {}
    for name, overrides in VARIANTS.items():
        path = out / "runs" / f"{_slug(name)}.json"
        if name not in args.variants:
            if path.is_file():
                results[name] = json.loads(path.read_text())
            continue
        if not path.is_file():
            config = dict(_config_dict(args), checkpoint_dir=str(out / "checkpoints"), **overrides)
            result = run(MODEL, args.dataset, config_file_list=args.config_files, config_dict=config)
            summary = {"valid": result["best_valid_result"], "test": result["test_result"],
                       "valid_metric": result["valid_metric"], "record": result["record"]}
            path.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(path, lambda f: f.write(json.dumps(summary, indent=2)))
        results[name] = json.loads(path.read_text())
    return results


def evaluate_baselines(args):
    """Test search metrics of BM25 and the frozen dense retriever ({name: {"test": ...}})."""
    config = Config(MODEL, args.dataset, args.config_files, _config_dict(args))
    _, train, _, test = load_data(config)  # the split the trained runs saw
    dataset = train._dataset
    log = SearchLog(config, dataset)
    metrics, topk = search_metric_names(config)
    evaluator = SearchEvaluator(log, log.split(test._dataset), metrics, topk)

    modalities = list(config["modalities"])
    name, pooling, normalize, max_length = text_encoder_settings(config, modalities)
    text = next(m for m in modalities if feature_store(config).manifest().get(m, {}).get("modality") == "text")
    fields = feature_store(config).manifest()[text]["fields"]
    token2id = dataset.field2token_id[dataset.iid_field]
    texts = {token2id[t]: v for t, v in item_texts(Path(config["data_path"]), fields).items() if t in token2id}

    encoder = TextEncoder(name, device="cpu", pooling=pooling, normalize=normalize, max_length=max_length)
    queries = torch.from_numpy(encoder.encode(log.queries))
    item_features = load_item_features(config, dataset)[text][0]
    baselines = {
        "BM25": BM25Search(texts, dataset.item_num, log.queries),
        "dense (frozen encoder)": DenseSearch(item_features, queries),
    }
    return {label: {"test": evaluator.evaluate(b.score_fn)} for label, b in baselines.items()}, len(evaluator)


def table(results):
    """Markdown table: search and recommendation test metrics per method (str)."""
    columns = SEARCH_COLUMNS + REC_COLUMNS
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, result in results.items():
        cells = [f"{result['test'][c]:.4f}" if c in result["test"] else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", help="folder holding DATASET/ (default: RecBole's)")
    parser.add_argument("--config-files", nargs="*", help="extra YAML (e.g. the dataset's modalities)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stopping-step", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--output", default="docs/results/unified_search")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS),
        help="the trained methods to run, comma-separated (default: all); finished runs of the others are still reported",
    )
    parser.add_argument(
        "--threads", type=int,
        help="torch CPU threads (default: torch's); 1 when other jobs share the CPU, where more threads wait on each other",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.variants = args.variants.split(",")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}: choose from {list(VARIANTS)}")
    out = Path(args.output) / args.dataset
    results = train_variants(args, out)
    baselines, n_cases = evaluate_baselines(args)
    results.update(baselines)
    config = Config(MODEL, args.dataset, args.config_files, _config_dict(args))
    header = (
        f"# {args.dataset}: unified search + recommendation (test)\n\n"
        f"Command: `python experiments/unified_search.py {' '.join(sys.argv[1:] if argv is None else argv)}`  \n"
        f"Device: {describe_device(config['device'])}; seed {args.seed}; at most {args.epochs} epochs, "
        f"early stopping after {args.stopping_step} evaluations without progress.  \n"
        f"Search: {n_cases} test (user, query) cases, queries from `{config['search_recipe']}`; "
        "all items ranked (cold-start items included). Recommendation: RecBole full-sort, "
        "training and validation items masked. Each trained method was selected on validation "
        "(its valid_metric), then tested once.\n\n"
    )
    replace_atomically(out / "results.md", lambda f: f.write(header + table(results) + "\n"))
    replace_atomically(out / "results.json", lambda f: f.write(json.dumps(results, indent=2)))
    print(header + table(results))


if __name__ == "__main__":
    main()
