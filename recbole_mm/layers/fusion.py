"""Projecting item features into the embedding space, and fusing several item representations.

Shared by the multimodal models (LF-MMLGCN and its variants). Shapes: ``n`` items, ``d`` the
embedding size, ``k`` the number of representations fused (the collaborative one plus one per
modality).
"""

import torch
import torch.nn.functional as F
from torch import nn

PROJECTIONS = ("frozen", "trainable", "unfrozen")
FUSIONS = ("mean", "sum", "max", "concat", "attention")
LINEAR_FUSIONS = ("mean", "sum")  # fused = sum_k w_k * input_k, weights from the mask alone


class ModalityProjection(nn.Module):
    """L2-normalised item features projected linearly to ``d``: ``p_i = W (m_i / ||m_i||)``.

    Modes:

    - ``frozen``: ``W`` random (Xavier) and never trained; what the LF-MMLGCN reference code does.
      The projected table is computed once.
    - ``trainable``: ``W`` is learned (what the paper's text describes).
    - ``unfrozen``: the projected table ``P`` [n, d] itself is a parameter, initialised with the
      frozen projection (the paper's variant that overfits on ML-1M).

    Args:
        features (torch.Tensor): [n, d_in] raw item features (rows of missing items are ignored).
        embedding_size (int): ``d``.
        mode (str): one of :data:`PROJECTIONS`.
    """

    def __init__(self, features, embedding_size, mode="frozen"):
        super().__init__()
        if mode not in PROJECTIONS:
            raise ValueError(f"projection {mode!r}: choose one of {', '.join(PROJECTIONS)}")
        self.mode = mode
        normalised = F.normalize(features.float(), p=2, dim=-1)
        linear = nn.Linear(features.shape[1], embedding_size, bias=False)
        nn.init.xavier_uniform_(linear.weight)
        if mode == "trainable":
            self.register_buffer("features", normalised, persistent=False)
            self.linear = linear
        else:
            with torch.no_grad():
                table = linear(normalised)
            if mode == "frozen":
                self.register_buffer("table", table)
            else:
                self.table = nn.Parameter(table)

    def forward(self):
        """The projected features of every item: [n, d]."""
        if self.mode == "trainable":
            return self.linear(self.features)
        return self.table


class Fusion(nn.Module):
    """Fuse ``k`` item representations [k, n, d] into one [n, d], skipping masked-out ones.

    ``mask`` [k, n] says which inputs an item has (an item without a modality leaves it out of its
    mean, sum, max or attention instead of counting zeros); an item with none of the inputs gets
    zeros. Methods:

    - ``mean``: average of the present inputs (1/(n+1) each when all are present);
    - ``sum``: sum of the present inputs;
    - ``max``: element-wise maximum of the present inputs;
    - ``concat``: ``Linear(k d -> d)`` of the concatenation, absent inputs as zeros;
    - ``attention``: a learned gate, ``softmax_k(q . tanh(W x_k + b))`` over the present inputs,
      weighting their sum.

    Args:
        method (str): one of :data:`FUSIONS`.
        n_inputs (int): ``k``.
        embedding_size (int): ``d``.
    """

    def __init__(self, method, n_inputs, embedding_size):
        super().__init__()
        if method not in FUSIONS:
            raise ValueError(f"fusion {method!r}: choose one of {', '.join(FUSIONS)}")
        self.method = method
        if method == "concat":
            self.linear = nn.Linear(n_inputs * embedding_size, embedding_size)
        elif method == "attention":
            self.key = nn.Linear(embedding_size, embedding_size)
            self.query = nn.Parameter(torch.zeros(embedding_size))  # starts as the plain mean

    def forward(self, inputs, mask):
        """``inputs`` [k, n, d], ``mask`` [k, n] bool -> [n, d]."""
        empty = ~mask.any(dim=0)  # [n]: items with no input at all
        if empty.any():  # compute them as if all were present (finite values, finite gradients)...
            fused = self._fuse(inputs, mask | empty.unsqueeze(0))
            return fused.masked_fill(empty.unsqueeze(-1), 0.0)  # ...then give them zeros
        return self._fuse(inputs, mask)

    def input_weights(self, mask, dtype=torch.float32):
        """The weights ``w`` [k, n] of a linear method (mean, sum): ``fused = sum_k w_k * input_k``.

        ``mean``: 1 / (number of present inputs) for a present input, 0 for an absent one;
        ``sum``: 1 and 0. A caller can then combine its inputs without stacking them into
        [k, n, d] (inputs that need no gradient then cost no backward).
        """
        if self.method not in LINEAR_FUSIONS:
            raise ValueError(f"fusion {self.method!r} is not linear: only {LINEAR_FUSIONS} have weights")
        weights = mask.to(dtype)
        if self.method == "mean":
            weights = weights / weights.sum(0).clamp(min=1.0)
        return weights

    def _fuse(self, inputs, mask):
        if self.method in LINEAR_FUSIONS:
            return (inputs * self.input_weights(mask, inputs.dtype).unsqueeze(-1)).sum(0)
        weights = mask.unsqueeze(-1).to(inputs.dtype)  # [k, n, 1]
        if self.method == "max":
            return inputs.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=0).values
        if self.method == "concat":
            present = inputs * weights
            return self.linear(present.permute(1, 0, 2).reshape(inputs.shape[1], -1))
        scores = torch.tanh(self.key(inputs)) @ self.query  # [k, n]
        attention = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)
        return (attention.unsqueeze(-1) * inputs).sum(0)
