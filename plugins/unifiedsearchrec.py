r"""UnifiedSearchRec: one multimodal space for users, items and text queries, trained multi-task.

After the seed paper "Multi-Modal Deep Learning for Unified Search-Recommendation Systems in
Hybrid Content Platforms": one item representation serves recommendation (user -> items) and
search (query [+ user] -> items).

Shapes: ``n`` items, ``m`` users, ``d = embedding_size``, ``Q`` distinct queries, ``t`` the text
encoder's size, ``B`` a batch.

**Items.** :math:`v_i = \mathrm{Fusion}(e_i, p^1_i, \dots, p^M_i[, x_i])` [n, d]: the collaborative
ID embedding :math:`e_i`, each modality projected to d (:math:`p^m_i = W_m f^m_i / \|f^m_i\|`, late
fusion) and, with ``early_fusion``, :math:`x_i = W_x [f^1_i / \|f^1_i\|; \dots; f^M_i / \|f^M_i\|]`
(the modalities concatenated first, early fusion); fused by ``fusion`` (mean, sum, max, concat, or
attention over the inputs). An item without training interactions leaves :math:`e_i` (an untrained
ID vector) out of its fusion, and an item without a modality leaves that modality out, so
cold-start items live in the space by their content alone.

**Users.** :math:`u` [m, d], an ID embedding.

**Queries.** The text encoder of the dataset's text modality (frozen; the same model, pooling and
normalisation as in the feature store's manifest) turns a query into :math:`f_q` [t]; a trainable
projection maps it to the space: :math:`q = W_q f_q`. Personalised search adds the user:
:math:`q_u = q + P u` (``P`` [d, d] starts at zero: search starts unpersonalised).

**Heads.** Recommendation: :math:`s(u, i) = u^\top v_i`, BPR loss on RecBole's (user, positive,
negative) triples + ``reg_weight`` L2 on the batch's ID embeddings. Search: cosine scores
:math:`\cos(q_u, h(v_i)) / \tau`, where :math:`h` is the search task's own linear head over the
shared item vectors (``search_head``; the identity when off), and InfoNCE over in-batch negatives: each of ``search_batch_size``
training searches (drawn uniformly, with replacement, at every step) against the items of the
other searches of the batch (copies of its own item are not negatives).

**Multi-task loss** (``loss_weighting``): ``fixed``: :math:`w_r L_r + w_s L_s`;
``uncertainty`` (Kendall, Gal and Cipolla 2018): :math:`\sum_k e^{-\sigma_k} w_k L_k + \sigma_k`
with learned :math:`\sigma_k`; ``pcgrad`` (Yu et al. 2020): the gradients of the two weighted
losses are computed separately and each is projected off the other's direction when they conflict
(negative inner product), their sum is the step. A weight of 0 switches a task off (the
recommendation-only and search-only ablations).

Evaluation: RecBole's recommendation metrics plus ``search_<metric>@k`` over the split's searches
(:mod:`recbole_mm.search.evaluation`), in one result, and ``multitask_ndcg@k``, the mean of
``ndcg@k`` and ``search_ndcg@k``; ``valid_metric`` picks which one selects the model
(``multitask_ndcg@10`` by default, ``search_ndcg@10`` for search alone, ``NDCG@10`` for
recommendation alone). ``search_ranking: user`` ranks search results by :math:`s(u, i)` alone, ignoring the query
(the recommendation-only baseline).
"""

import logging

import torch
import torch.nn.functional as F
from recbole.trainer import Trainer
from recbole.utils import InputType
from torch import nn

from recbole_mm.layers.fusion import Fusion, ModalityProjection
from recbole_mm.model.eval_cache import EvalCache
from recbole_mm.model.multimodal import MultimodalRecommender, feature_store
from recbole_mm.search.data import SearchError, SearchLog
from recbole_mm.search.evaluation import SearchEvaluator, search_metric_names

LOSS_WEIGHTINGS = ("fixed", "uncertainty", "pcgrad")
SEARCH_RANKINGS = ("query", "user")


def text_encoder_settings(config, modality_names):
    """(encoder name, pooling, normalize, max_length) for queries.

    ``query_encoder`` if set, else the encoder that made the first text feature set of
    ``modality_names`` (from the feature store's manifest).
    """
    if config["query_encoder"]:
        return config["query_encoder"], None, None, None
    store = feature_store(config)
    manifest = store.manifest()
    for name in modality_names:
        info = manifest.get(name, {})
        if info.get("modality") == "text" and info.get("encoder"):
            return info["encoder"], info.get("pooling"), info.get("normalized"), info.get("max_length")
    raise SearchError(
        f"UnifiedSearchRec needs a text encoder for queries: none of the modalities "
        f"{modality_names} is a text feature set of the store {store.root}; set query_encoder "
        "(e.g. sentence-transformers/all-MiniLM-L6-v2)"
    )


class UnifiedSearchRec(EvalCache, MultimodalRecommender):
    """Multi-task search + recommendation over one multimodal item space (see the module doc)."""

    input_type = InputType.PAIRWISE
    content_only_cold_items = True  # items without training interactions leave their ID out

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        d = self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        self.weights = {"rec": float(config["rec_weight"]), "search": float(config["search_weight"])}
        self.loss_weighting = config["loss_weighting"]
        self.search_ranking = config["search_ranking"]
        self.temperature = float(config["temperature"])
        self.search_batch_size = int(config["search_batch_size"])
        self.personalized = bool(config["personalized_search"])
        self._check_options()

        self.user_embedding = nn.Embedding(self.n_users, d)
        self.item_embedding = nn.Embedding(self.n_items, d)
        nn.init.xavier_normal_(self.user_embedding.weight)
        nn.init.xavier_normal_(self.item_embedding.weight)
        features, masks = self.item_features, self.item_feature_masks
        self.projections = nn.ModuleList(
            ModalityProjection(features[name], d, config["projection"]) for name in self.modality_names
        )
        self.early_fusion = bool(config["early_fusion"])
        if self.early_fusion:
            width = sum(features[name].shape[1] for name in self.modality_names)
            self.early = nn.Linear(width, d)
        n_inputs = 1 + len(self.modality_names) + int(self.early_fusion)
        self.fusion = Fusion(config["fusion"], n_inputs, d)

        seen = torch.bincount(dataset.inter_feat[self.ITEM_ID], minlength=self.n_items) > 0
        seen[0] = False
        masks = [seen] + [masks[name] for name in self.modality_names]
        if self.early_fusion:
            masks.append(torch.stack(masks[1:]).any(dim=0))
        self.register_buffer("input_masks", torch.stack(masks), persistent=False)  # [k, n]

        # searches: the training split's, and every query's frozen text vector
        self.search_log = SearchLog(config, dataset)
        train_rows = torch.from_numpy(self.search_log.split(dataset))
        if self.weights["search"] > 0 and len(train_rows) == 0:
            raise SearchError(f"{self.search_log.path}: no search of the training interactions")
        for name, values in (("users", self.search_log.users), ("query", self.search_log.query),
                             ("items", self.search_log.items)):
            self.register_buffer(f"train_search_{name}", torch.from_numpy(values)[train_rows], persistent=False)
        self.encoder_settings = text_encoder_settings(config, self.modality_names)
        self._encoder = None
        self.register_buffer("query_features", self.encode_texts(self.search_log.queries), persistent=False)
        self.query_projection = nn.Linear(self.query_features.shape[1], d)
        self.user_to_query = nn.Linear(d, d, bias=False)
        nn.init.zeros_(self.user_to_query.weight)
        # task-specific item head of the search task over the shared item vectors (shared bottom)
        self.search_head = nn.Linear(d, d) if config["search_head"] else nn.Identity()
        if self.loss_weighting == "uncertainty":
            self.log_variance = nn.Parameter(torch.zeros(2))
        self.generator = torch.Generator().manual_seed(int(config["seed"]))

    def _check_options(self):
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting {self.loss_weighting!r}: choose one of {LOSS_WEIGHTINGS}")
        if self.search_ranking not in SEARCH_RANKINGS:
            raise ValueError(f"search_ranking {self.search_ranking!r}: choose one of {SEARCH_RANKINGS}")
        if min(self.weights.values()) < 0 or max(self.weights.values()) == 0:
            raise ValueError("rec_weight and search_weight must be >= 0, and not both 0")

    # ------------------------------------------------------------------ text
    def encode_texts(self, texts):
        """Frozen text-encoder vectors of ``texts`` (list of str): float [len, t], on CPU."""
        if self._encoder is None:
            from recbole_mm.dataset_tools.encoders.text import TextEncoder

            name, pooling, normalize, max_length = self.encoder_settings
            self._encoder = TextEncoder(
                name, device="cpu", pooling=pooling, normalize=normalize, max_length=max_length
            )
            logging.getLogger().info(f"UnifiedSearchRec: queries encoded with {name}")
        return torch.from_numpy(self._encoder.encode(list(texts)))

    # ------------------------------------------------------------------ representations
    def item_vectors(self):
        """Fused item representations [n, d]; cached in eval mode."""
        return self.evaluation_cached(self._fused_items)

    def _fused_items(self):
        inputs = [self.item_embedding.weight] + [projection() for projection in self.projections]
        if self.early_fusion:
            features = self.item_features
            inputs.append(self.early(torch.cat(
                [F.normalize(features[name], dim=-1) for name in self.modality_names], dim=-1
            )))
        return self.fusion(torch.stack(inputs), self.input_masks)

    def query_vectors(self, query_features, users=None):
        """Queries in the item space [B, d] from text vectors [B, t] (+ users [B] if personalised)."""
        vectors = self.query_projection(query_features)
        if self.personalized and users is not None:
            vectors = vectors + self.user_to_query(self.user_embedding(users))
        return vectors

    # ------------------------------------------------------------------ losses
    def recommendation_loss(self, interaction, items):
        """BPR + L2 on the batch's ID embeddings (scalar)."""
        user = interaction[self.USER_ID]
        positive, negative = interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        u = self.user_embedding(user)
        difference = (u * (items[positive] - items[negative])).sum(dim=-1)
        l2 = (
            u.pow(2).sum() + self.item_embedding(positive).pow(2).sum()
            + self.item_embedding(negative).pow(2).sum()
        ) / len(user)
        return -F.logsigmoid(difference).mean() + self.reg_weight * l2

    def search_loss(self, items):
        """InfoNCE of ``search_batch_size`` training searches with in-batch negatives (scalar)."""
        n = len(self.train_search_items)
        rows = torch.randint(n, (min(self.search_batch_size, n),), generator=self.generator)
        rows = rows.to(self.train_search_items.device)
        target_items = self.train_search_items[rows]
        queries = self.query_vectors(
            self.query_features[self.train_search_query[rows]], self.train_search_users[rows]
        )
        targets = self.search_head(items[target_items])
        logits = F.normalize(queries, dim=-1) @ F.normalize(targets, dim=-1).t()
        logits = logits / self.temperature
        same_item = target_items.unsqueeze(0) == target_items.unsqueeze(1)
        same_item.fill_diagonal_(False)
        logits = logits.masked_fill(same_item, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(rows), device=logits.device))

    def calculate_loss(self, interaction):
        self.drop_eval_cache()
        items = self.item_vectors()
        losses = {}
        if self.weights["rec"] > 0:
            losses["rec"] = self.weights["rec"] * self.recommendation_loss(interaction, items)
        if self.weights["search"] > 0:
            losses["search"] = self.weights["search"] * self.search_loss(items)
        if self.loss_weighting == "uncertainty":
            return sum(
                torch.exp(-self.log_variance[k]) * loss + self.log_variance[k]
                for k, loss in ((0, losses.get("rec")), (1, losses.get("search")))
                if loss is not None
            )
        if self.loss_weighting == "pcgrad" and len(losses) == 2:
            return self._pcgrad(losses["rec"], losses["search"])
        return sum(losses.values())

    def _pcgrad(self, first, second):
        """A loss whose gradient is the PCGrad combination of the two losses' gradients.

        Its value is ``first + second``; its gradient, for each parameter, is the projected sum.
        """
        parameters = [p for p in self.parameters() if p.requires_grad]
        flat = []
        for loss in (first, second):
            grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
            flat.append(torch.cat([
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, parameters)
            ]))
        g1, g2 = flat
        dot = torch.dot(g1, g2)
        if dot < 0:  # conflicting: each loses its component along the other
            g1, g2 = g1 - dot / g2.pow(2).sum() * flat[1], g2 - dot / flat[0].pow(2).sum() * flat[0]
        combined = g1 + g2
        surrogate, offset = 0.0, 0
        for p in parameters:
            size = p.numel()
            surrogate = surrogate + (p * combined[offset:offset + size].view_as(p)).sum()
            offset += size
        return surrogate - surrogate.detach() + (first + second).detach()

    # ------------------------------------------------------------------ scores
    def predict(self, interaction):
        items = self.item_vectors()[interaction[self.ITEM_ID]]
        return (self.user_embedding(interaction[self.USER_ID]) * items).sum(dim=-1)

    def full_sort_predict(self, interaction):
        """Recommendation scores [B * n] of the batch's users against all items."""
        users = self.user_embedding(interaction[self.USER_ID])
        return (users @ self.item_vectors().t()).view(-1)

    def search_scores(self, query_features, users=None):
        """Search scores [B, n] of text vectors [B, t] (with ``users`` [B] if personalised)."""
        if self.search_ranking == "user":
            return self.user_embedding(users) @ self.item_vectors().t()
        queries = F.normalize(self.query_vectors(query_features, users), dim=-1)
        return queries @ F.normalize(self.search_head(self.item_vectors()), dim=-1).t()

    def search(self, texts, users=None):
        """Search scores [B, n] of new query texts (one encoder call, one product with the
        cached item vectors)."""
        features = self.encode_texts(texts).to(self.query_projection.weight.device)
        return self.search_scores(features, users)


class UnifiedSearchRecTrainer(Trainer):
    """RecBole's trainer; every evaluation also reports the search metrics of the split.

    The split's searches are those whose (user, item) is an interaction of the evaluated loader's
    dataset (valid or test), so ``valid_metric: search_ndcg@10`` selects on validation searches.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.search_metrics, self.search_topk = search_metric_names(config)
        self._search_evaluators = {}

    def _search_evaluator(self, eval_data):
        key = id(eval_data)
        if key not in self._search_evaluators:
            log = self.model.search_log
            self._search_evaluators[key] = SearchEvaluator(
                log, log.split(eval_data._dataset), self.search_metrics, self.search_topk
            )
        return self._search_evaluators[key]

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        result = super().evaluate(eval_data, load_best_model, model_file, show_progress)
        if result is None or not self.search_metrics:
            return result
        model = self.model
        model.eval()
        search = self._search_evaluator(eval_data).evaluate(
            lambda users, queries: model.search_scores(model.query_features[queries], users),
            device=self.device,
        )
        places = self.config["metric_decimal_place"]
        result.update({name: round(value, places) for name, value in search.items()})
        for k in self.search_topk:  # one number to select a multi-task model on
            if f"ndcg@{k}" in result and f"search_ndcg@{k}" in result:
                mean = (result[f"ndcg@{k}"] + search[f"search_ndcg@{k}"]) / 2
                result[f"multitask_ndcg@{k}"] = round(mean, places)
        return result

