"""``recbole-mm search`` and ``recbole-mm recommend``: top-k items of a trained checkpoint.

Both rebuild the run's data and model from the checkpoint (:func:`recbole_mm.quick_start.
load_data_and_model`) and print item tokens with their titles. The model's fused item vectors are
computed once and cached (eval mode), so each further query costs one text-encoder call and one
top-k over all items.
"""

import torch

from recbole_mm.search.data import SearchError

TITLE_FIELDS = ("movie_title", "title", "name", "artist_name", "book_title")


def item_titles(config, dataset):
    """{internal item id: title} from the dataset's title field, if it has one (dict)."""
    from pathlib import Path

    from recbole_mm.dataset_tools.extract import ExtractionError, item_texts

    folder = Path(config["data_path"])
    for field in TITLE_FIELDS:
        try:
            texts = item_texts(folder, [field])
        except (ExtractionError, OSError):
            continue
        token2id = dataset.field2token_id[dataset.iid_field]
        return {token2id[t]: title for t, title in texts.items() if t in token2id}
    return {}


def _user_id(dataset, token):
    if token is None:
        return None
    try:
        return int(dataset.token2id(dataset.uid_field, str(token)))
    except ValueError:
        raise SearchError(f"unknown user {token!r}: not a user of {dataset.dataset_name}") from None


def _top(scores, k, dataset, titles):
    """[(item token, title, score)] of the ``k`` best scores [n_items] (padding item excluded)."""
    scores = scores.clone()
    scores[0] = -float("inf")
    values, items = torch.topk(scores, min(k, len(scores) - 1))
    tokens = dataset.id2token(dataset.iid_field, items.cpu().numpy())
    return [
        (str(token), titles.get(int(item), ""), float(value))
        for token, item, value in zip(tokens, items.tolist(), values.tolist())
    ]


def load(checkpoint):
    """(config, model in eval mode, full dataset, titles) of ``checkpoint``."""
    from recbole_mm.quick_start import load_data_and_model

    config, model, dataset, *_ = load_data_and_model(checkpoint, state="WARNING")  # output: the items
    model.eval()
    return config, model, dataset, item_titles(config, dataset)


@torch.no_grad()
def search(checkpoint, query, user=None, k=10):
    """Top-``k`` items for the text ``query`` (personalised for user token ``user``).

    Returns:
        list of (item token, title, score).
    """
    config, model, dataset, titles = load(checkpoint)
    if not hasattr(model, "search"):
        raise SearchError(f"{config['model']} has no search head; train UnifiedSearchRec")
    user_id = _user_id(dataset, user)
    users = None if user_id is None else torch.tensor([user_id], device=config["device"])
    return _top(model.search([query], users)[0], k, dataset, titles)


@torch.no_grad()
def recommend(checkpoint, user, k=10):
    """Top-``k`` items for user token ``user``, leaving out every item the user interacted with.

    Returns:
        list of (item token, title, score).
    """
    from recbole.data.interaction import Interaction

    config, model, dataset, titles = load(checkpoint)
    user_id = _user_id(dataset, user)
    batch = Interaction({dataset.uid_field: torch.tensor([user_id])}).to(config["device"])
    scores = model.full_sort_predict(batch).view(-1)
    inter = dataset.inter_feat
    seen = inter[dataset.iid_field][inter[dataset.uid_field] == user_id]
    scores[seen.to(scores.device)] = -float("inf")
    return _top(scores, k, dataset, titles)


def format_items(rows):
    """The rows of :func:`search` / :func:`recommend` as aligned text lines (str)."""
    width = max((len(token) for token, _, _ in rows), default=4)
    return "\n".join(
        f"{rank:>3}. {token:<{width}}  {score:8.4f}  {title}"
        for rank, (token, title, score) in enumerate(rows, start=1)
    )
