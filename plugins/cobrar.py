r"""CoBraR: a single collaborative branch shared by users and items.

Reference:
    Marta Moscati, Shah Nawaz and Markus Schedl. "Parameter-Efficient Single Collaborative Branch
    for Recommendation." In Proceedings of the 19th ACM Conference on Recommender Systems (RecSys
    2025), pp. 1256-1260. https://doi.org/10.1145/3705328.3759302 (arXiv:2508.03518).

Written from the paper's equations; no code of the paper's reference implementation is used.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import xavier_normal_, zeros_

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType, ModelType

from recbole_mm.model.eval_cache import EvalCache

INTER_MATRIX_TYPES = ("01", "rating")
SCORES = ("cosine", "dot")


class CoBraR(EvalCache, GeneralRecommender):
    r"""CoBraR: user and item encoders that share one multi-layer branch.

    Let :math:`R \in \mathbb{R}^{N \times M}` be the training interaction matrix (``N = n_users``,
    ``M = n_items``, RecBole's padding id 0 included). User :math:`u` is represented by its row
    :math:`r_u \in \mathbb{R}^{M}`, item :math:`t` by its column :math:`r^t \in \mathbb{R}^{N}`.

    .. math::

        e_u = g(f_u(r_u)), \qquad e_t = g(f_t(r^t)), \qquad
        \hat y_{ut} = \max\left(\cos(e_u, e_t),\ \mu\right)

    * :math:`f_u: \mathbb{R}^M \to \mathbb{R}^p` and :math:`f_t: \mathbb{R}^N \to \mathbb{R}^p` are
      two separate single linear layers (with bias), ``p = projection_size``;
    * :math:`g` is ONE multi-layer perceptron applied to users and to items (weight sharing, the
      point of the paper): ``projection_size -> branch_layers... -> embedding_size`` with ReLU
      between layers and dropout (``dropout_prob``) after each hidden layer's ReLU;
    * :math:`\mu` = ``min_score`` keeps :math:`\ln \hat y` defined.

    The loss of one positive pair :math:`(u, t^+)` and its sampled negatives :math:`t^-_k` is

    .. math::

        \mathcal{L} = -\ln \hat y_{ut^+} - \sum_k \ln\left(1 - \hat y_{ut^-_k}\right),

    averaged over the positives of the batch; the L2 penalty is RecBole's ``weight_decay``. RecBole
    feeds POINTWISE rows (``label`` 1 for the positive, 0 for each of the
    ``train_neg_sample_args.sample_num`` negatives), so the loss is the sum of the binary
    cross-entropies of all rows divided by the number of positive rows.

    Options and what they reproduce:

    * ``inter_matrix_type: '01'`` (default): binary :math:`R`, as in the paper.
      ``'rating'``: :math:`R` holds the ``RATING_FIELD`` values (as RecBole's DMF does); the target
      stays the 0/1 label. The rating column must be loaded (``load_col``).
    * ``last_activation: False`` (default, the paper's text): a linear output layer, cosines in
      [-1, 1]; negative cosines are clamped to :math:`\mu` and then give no gradient. ``True``: ReLU
      after the branch's last layer too, as in the paper's reference implementation: embeddings are
      non-negative, so :math:`\cos \ge 0` and the clamp at :math:`\mu` only acts on
      (near-)orthogonal pairs.
    * ``score: cosine`` (default, the paper): :math:`\hat y = \max(\cos(e_u, e_t), \mu)`.
      ``dot``: :math:`\hat y = \max(\sigma(e_u^\top e_t), \mu)`, the logistic of the dot product
      (un-normalised embeddings; the same BCE loss, as DMF/NCF score).
    * ``min_score``: :math:`\mu` (paper: 1e-4). Inside the loss only, scores are also capped at
      ``1 - min_score`` so that :math:`\ln(1 - \hat y)` stays finite; ``predict`` and
      ``full_sort_predict`` return :math:`\hat y` exactly.

    Inputs are never materialised as dense ``n_users x n_items`` matrices: :math:`R` and
    :math:`R^\top` are kept in CSR form (non-persistent buffers, so they follow ``.to(device)`` and
    are not written to checkpoints), and :math:`f(r) = W r + b` is a sparse-dense product over the
    non-zeros of the batch's distinct users and items (``O(nnz * p)`` per batch). ``full_sort_predict`` encodes all items once
    and caches their normalised embeddings until the next ``train()``/``eval()`` switch,
    ``calculate_loss`` or ``load_state_dict``.
    """

    input_type = InputType.POINTWISE
    type = ModelType.GENERAL
    fast_path_compatible = True  # calculate_loss reads only user, item and label

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        self.LABEL = config["LABEL_FIELD"]
        self.RATING = config["RATING_FIELD"]
        self.inter_matrix_type = str(config["inter_matrix_type"])
        self.projection_size = config["projection_size"]
        self.branch_layers = list(config["branch_layers"] or [])
        self.embedding_size = config["embedding_size"]
        self.dropout_prob = config["dropout_prob"]
        self.last_activation = bool(config["last_activation"])
        self.min_score = float(config["min_score"])
        self.score = str(config["score"])
        if self.score not in SCORES:
            raise ValueError(f"CoBraR: score must be one of {SCORES}, got '{self.score}'")
        if self.inter_matrix_type not in INTER_MATRIX_TYPES:
            raise ValueError(
                f"CoBraR: inter_matrix_type must be one of {INTER_MATRIX_TYPES}, "
                f"got '{self.inter_matrix_type}'"
            )
        if not 0.0 < self.min_score < 0.5:
            raise ValueError(f"CoBraR: min_score must be in (0, 0.5), got {self.min_score}")

        # interaction matrix R (n_users x n_items) of the training split, rows = user inputs
        if self.inter_matrix_type == "rating":
            if self.RATING not in dataset.field2type:
                raise ValueError(
                    f"CoBraR: inter_matrix_type 'rating' needs the rating field '{self.RATING}' "
                    "(RATING_FIELD) in the interactions; load it with load_col and do not list it "
                    "in unused_col"
                )
            matrix = dataset.inter_matrix(form="csr", value_field=self.RATING)
        else:
            matrix = dataset.inter_matrix(form="csr")  # duplicated (user, item) rows are summed
            matrix.data[:] = 1.0  # ... so set them back to 1: R stays binary
        matrix = matrix.astype(np.float32)
        self._register_csr("user", matrix)  # rows of R: users' inputs, length n_items
        self._register_csr("item", matrix.T.tocsr())  # rows of R^T: items' inputs, length n_users

        # f_u and f_t: modality- (here: side-) specific single linear down-projections
        self.user_projection = nn.Linear(self.n_items, self.projection_size)
        self.item_projection = nn.Linear(self.n_users, self.projection_size)
        # g: the single collaborative branch, shared by users and items
        self.branch = self._build_branch()

        self.apply(self._init_weights)

    # ------------------------------------------------------------------ building
    def _register_csr(self, side, matrix):
        """Keep a scipy CSR matrix as non-persistent buffers ``<side>_indptr/_indices/_values``."""
        self.register_buffer(
            f"{side}_indptr", torch.as_tensor(matrix.indptr.astype(np.int64)), persistent=False
        )
        self.register_buffer(
            f"{side}_indices", torch.as_tensor(matrix.indices.astype(np.int64)), persistent=False
        )
        self.register_buffer(
            f"{side}_values", torch.as_tensor(matrix.data.astype(np.float32)), persistent=False
        )

    def _build_branch(self):
        """The shared MLP ``g``: ``projection_size -> *branch_layers -> embedding_size``."""
        sizes = [self.projection_size] + self.branch_layers + [self.embedding_size]
        layers = []
        for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            is_last = k == len(sizes) - 2
            layers.append(nn.Linear(n_in, n_out))
            if not is_last or self.last_activation:
                layers.append(nn.ReLU())
            if not is_last and self.dropout_prob > 0:
                layers.append(nn.Dropout(self.dropout_prob))
        return nn.Sequential(*layers)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            xavier_normal_(module.weight.data)
            if module.bias is not None:
                zeros_(module.bias.data)

    # ------------------------------------------------------------------ inputs
    def _gather_rows(self, side, ids):
        """The non-zeros of rows ``ids`` of ``R`` (side ``user``) or ``R^T`` (side ``item``).

        Args:
            side (str): ``"user"`` or ``"item"``.
            ids (torch.LongTensor): row ids, shape ``[B]``.

        Returns:
            tuple: ``(columns, values, offsets)``: ``columns`` and ``values`` of shape ``[nnz_B]``
            (the rows' non-zeros, one row after the other) and ``offsets`` of shape ``[B]`` (where
            each row starts).
        """
        indptr = getattr(self, f"{side}_indptr")
        starts = indptr[ids]
        lengths = indptr[ids + 1] - starts
        offsets = torch.cumsum(lengths, 0) - lengths
        total = int(lengths.sum())
        positions = torch.arange(total, device=ids.device) + torch.repeat_interleave(
            starts - offsets, lengths, output_size=total
        )
        indices = getattr(self, f"{side}_indices")
        values = getattr(self, f"{side}_values")
        return indices[positions], values[positions], offsets

    def interaction_rows(self, side, ids):
        r"""Dense input vectors: rows of :math:`R` (users) or columns of :math:`R` (items).

        For inspection and tests; the model itself never builds them.

        Args:
            side (str): ``"user"`` or ``"item"``.
            ids (torch.LongTensor): shape ``[B]``.

        Returns:
            torch.FloatTensor: shape ``[B, n_items]`` for users, ``[B, n_users]`` for items.
        """
        ids = ids.to(self.user_indptr.device)
        columns, values, offsets = self._gather_rows(side, ids)
        width = self.n_items if side == "user" else self.n_users
        lengths = torch.diff(offsets, append=offsets.new_tensor([columns.numel()]))
        rows = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), lengths)
        dense = torch.zeros(len(ids), width, device=ids.device)
        dense[rows, columns] = values
        return dense

    def _project(self, side, ids):
        """``f(r) = W r + b`` for the rows ``ids``, from their non-zeros; shape ``[B, p]``.

        Each distinct id is projected once (a pointwise batch repeats every user: a positive and
        its sampled negatives share it), then the rows are spread back to the batch's order.
        """
        unique, inverse = torch.unique(ids, return_inverse=True)
        columns, values, offsets = self._gather_rows(side, unique)
        indptr = torch.cat([offsets, offsets.new_tensor([columns.numel()])])
        return self._linear_on_csr(side, indptr, columns, values)[inverse]

    def _linear_on_csr(self, side, indptr, columns, values):
        """``f`` of side ``side`` applied to the rows of a CSR matrix (``indptr`` of shape
        ``[n + 1]``, ``columns`` and ``values`` of shape ``[nnz]``); shape ``[n, p]``.

        A sparse-dense product: ``O(nnz * p)``, and the weight's gradient is ``rows^T @ grad``."""
        linear = self.user_projection if side == "user" else self.item_projection
        rows = torch.sparse_csr_tensor(
            indptr,
            columns,
            values,
            size=(indptr.numel() - 1, linear.in_features),
            check_invariants=False,  # valid by construction, built every batch: checks cost time
        )
        return torch.sparse.mm(rows, linear.weight.t()) + linear.bias

    # ------------------------------------------------------------------ encoders
    def encode_users(self, user):
        r"""User embeddings :math:`e_u = g(f_u(r_u))`.

        Args:
            user (torch.LongTensor): user ids, shape ``[B]``.

        Returns:
            torch.FloatTensor: shape ``[B, embedding_size]``.
        """
        return self.branch(self._project("user", user))

    def encode_items(self, item):
        r"""Item embeddings :math:`e_t = g(f_t(r^t))` (the same branch ``g`` as for users).

        Args:
            item (torch.LongTensor): item ids, shape ``[B]``.

        Returns:
            torch.FloatTensor: shape ``[B, embedding_size]``.
        """
        return self.branch(self._project("item", item))

    def _normalize(self, embedding):
        """With ``score: cosine``, rows scaled to unit L2 norm (all-zero rows stay zero); with
        ``dot``, unchanged. Same shape."""
        if self.score == "dot":
            return embedding
        return F.normalize(embedding, p=2, dim=-1, eps=1e-12)

    def _score(self, similarity):
        r""":math:`\hat y` from cosines (``score: cosine``) or dot products (``dot``)."""
        if self.score == "dot":
            similarity = torch.sigmoid(similarity)
        return similarity.clamp(min=self.min_score)

    def forward(self, user, item):
        r"""Scores :math:`\hat y_{ut}` of aligned pairs (see ``score``).

        Args:
            user (torch.LongTensor): shape ``[B]``.
            item (torch.LongTensor): shape ``[B]``.

        Returns:
            torch.FloatTensor: shape ``[B]``, values in ``[min_score, 1]``.
        """
        user_e = self._normalize(self.encode_users(user))
        item_e = self._normalize(self.encode_items(item))
        return self._score((user_e * item_e).sum(dim=-1))

    # ------------------------------------------------------------------ RecBole API
    def calculate_loss(self, interaction):
        r"""Mean over the batch's positives of :math:`-\ln \hat y^+ - \sum_k \ln(1 - \hat y^-_k)`.

        Args:
            interaction (Interaction): ``USER_ID``, ``ITEM_ID`` and ``LABEL`` (1/0), shape ``[B]``.

        Returns:
            torch.FloatTensor: scalar loss.
        """
        self.drop_eval_cache()  # weights are about to change
        user = interaction[self.USER_ID]
        item = interaction[self.ITEM_ID]
        label = interaction[self.LABEL].float()
        score = self.forward(user, item).clamp(max=1.0 - self.min_score)
        bce = -(label * torch.log(score) + (1.0 - label) * torch.log1p(-score))
        return bce.sum() / label.sum().clamp(min=1.0)

    def predict(self, interaction):
        """Scores of the (user, item) pairs of ``interaction``; shape ``[B]``."""
        return self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def _all_item_embeddings(self):
        """Embeddings of all items (unit-norm for cosine scores), ``[n_items, embedding_size]``;
        cached in eval mode."""
        return self.evaluation_cached(
            lambda: self._normalize(
                self.branch(
                    self._linear_on_csr("item", self.item_indptr, self.item_indices, self.item_values)
                )
            )
        )

    def full_sort_predict(self, interaction):
        """Scores of the batch's users against every item.

        Args:
            interaction (Interaction): ``USER_ID`` of shape ``[B]``.

        Returns:
            torch.FloatTensor: shape ``[B * n_items]`` (user-major), values in ``[min_score, 1]``.
        """
        user_e = self._normalize(self.encode_users(interaction[self.USER_ID]))
        return self._score(user_e @ self._all_item_embeddings().t()).view(-1)
