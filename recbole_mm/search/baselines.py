"""Search baselines without personalisation, scored by :class:`~recbole_mm.search.evaluation.SearchEvaluator`.

- :class:`BM25Search`: BM25 (``bm25s``, Lucene variant, English stop words) over each item's text.
- :class:`DenseSearch`: cosine between the frozen text encoder's vectors of the query and of the
  item (the dataset's text feature set), nothing trained.

Both give every user the same ranking for a query; their ``score_fn`` has the evaluator's
signature ``(users [B], query ids [B]) -> scores [B, n_items]``.
"""

import numpy as np
import torch
import torch.nn.functional as F


class BM25Search:
    """BM25 over item texts.

    Args:
        item_texts (dict): {internal item id: text}; items without text score 0.
        n_items (int): items including the padding item.
        queries (list of str): query texts, indexed by query id.
    """

    def __init__(self, item_texts, n_items, queries):
        import bm25s

        self._bm25s = bm25s
        self.ids = np.fromiter(item_texts, dtype=np.int64, count=len(item_texts))
        self.retriever = bm25s.BM25()
        corpus = bm25s.tokenize([item_texts[i] for i in self.ids], stopwords="en", show_progress=False)
        self.retriever.index(corpus, show_progress=False)
        self.n_items = n_items
        self.queries = queries
        self._cache = {}

    def query_scores(self, query_id):
        """BM25 scores of every item for one query: float32 [n_items]."""
        if query_id not in self._cache:
            tokens = self._bm25s.tokenize(
                [self.queries[query_id]], stopwords="en", return_ids=False, show_progress=False
            )[0]
            scores = np.zeros(self.n_items, dtype=np.float32)
            if tokens:
                scores[self.ids] = self.retriever.get_scores(tokens)
            self._cache[query_id] = torch.from_numpy(scores)
        return self._cache[query_id]

    def score_fn(self, users, queries):
        return torch.stack([self.query_scores(int(q)) for q in queries.cpu()]).to(queries.device)


class DenseSearch:
    """Frozen dense retrieval: cosine of query and item text vectors.

    Args:
        item_features (torch.Tensor): [n_items, t] item text vectors (zero rows: no text).
        query_features (torch.Tensor): [Q, t] query vectors from the same encoder.
    """

    def __init__(self, item_features, query_features):
        self.items = F.normalize(item_features.float(), dim=-1)
        self.queries = F.normalize(query_features.float(), dim=-1)

    def score_fn(self, users, queries):
        return self.queries[queries.cpu()] @ self.items.t()
