r"""LF-MMLGCN: LightGCN with late fusion of multimodal item features.

Reference: the seed paper "Fusion of collaborative and multimodal embeddings for recommendation
using LightGCN". Written from the paper's equations and our notes on it
(``RECBOLE_FACTS.md``); no code of its (unlicensed) reference implementation is used.

LightGCN propagates the layer-0 user and item embeddings over the symmetric normalised
user-item graph and averages layers ``0..K``. Each modality's item features :math:`m_i^j` are
L2-normalised and projected to ``d`` (:math:`p_i^j`), and after propagation ("late") the item's
collaborative embedding :math:`e_i` is fused with them; users keep their LightGCN embedding.
Score: :math:`\hat y_{ui} = e_u^\top \tilde e_i`; loss: BPR plus L2 on the batch's layer-0
embeddings.
"""

import torch
import torch.nn.functional as F
from torch import nn

from recbole_mm.layers import mean_propagation
from recbole_mm.layers.fusion import LINEAR_FUSIONS, Fusion
from recbole_mm.model import MultimodalGraphRecommender

WEIGHTINGS = ("none", "alpha", "normalized", "equal")


class LFMMLGCN(MultimodalGraphRecommender):
    r"""LightGCN whose item embeddings are fused with projected multimodal features.

    Config keys (documented in ``properties/model/LFMMLGCN.yaml``): ``embedding_size``,
    ``n_layers`` (0 = matrix factorisation), ``reg_weight``, ``modalities``, ``projection``
    (frozen / trainable / unfrozen, see :class:`~recbole_mm.layers.fusion.ModalityProjection`),
    ``fusion`` (mean / sum / max / concat / attention, see
    :class:`~recbole_mm.layers.fusion.Fusion`) and ``weighting``:

    - ``none``: fuse :math:`[e_i, p_i^1, \dots, p_i^n]` as they are (mean: 1/(n+1) each);
    - ``alpha``: fuse :math:`[\alpha e_i, (1-\alpha) p_i^1, \dots]` with a learned
      :math:`\alpha = \sigma(w)`, :math:`w` starting at 0;
    - ``normalized``: fuse :math:`[n\, e_i / \lVert e_i \rVert, p_i^1, \dots]`;
    - ``equal``: :math:`\tfrac12 e_i + \tfrac12\,\mathrm{fuse}(p_i^1, \dots, p_i^n)` (just
      :math:`e_i` for an item with no modality).

    An item without a modality leaves it out of its fusion (mask), it is not fused as zeros. A cold
    item (``cold_item_mask``, item cold-start protocol) likewise lacks the collaborative input: it is
    the fusion of its projected modalities alone (zeros if it has none).
    """

    content_only_cold_items = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.weighting = config["weighting"]
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting {self.weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
        n_modalities = len(self.projections)
        fused_inputs = n_modalities if self.weighting == "equal" else n_modalities + 1
        self.fusion = Fusion(config["fusion"], fused_inputs, self.embedding_size)
        if self.weighting == "alpha":
            self.alpha_logit = nn.Parameter(torch.zeros(()))

    def fuse_items(self, collaborative):
        """Fuse the collaborative item embeddings [n_items, d] with the projected modalities."""
        mask = self.modality_mask  # [m, n_items]
        cold = self.cold_item_mask.unsqueeze(-1)  # [n_items, 1]
        if self.weighting == "equal":  # an item with no modality keeps its collaborative embedding
            modalities = self.fusion(self.projected_modalities(), mask)
            has_modality = mask.any(dim=0).unsqueeze(-1)
            fused = torch.where(has_modality, 0.5 * collaborative + 0.5 * modalities, collaborative)
            return torch.where(cold, modalities, fused)
        scale = 1.0  # of every projected modality
        if self.weighting == "alpha":
            alpha = torch.sigmoid(self.alpha_logit)
            collaborative, scale = alpha * collaborative, 1 - alpha
        elif self.weighting == "normalized":
            collaborative = len(self.projections) * F.normalize(collaborative, p=2, dim=-1)
        inputs_mask = torch.cat([~cold.T, mask])  # [1 + m, n_items]; cold: no collaborative input
        if self.fusion.method in LINEAR_FUSIONS:
            # w_0 e_i + scale * sum_j w_j p_j without stacking [1 + m, n_items, d]: the frozen
            # tables' term then needs no gradient, and backward touches e_i alone
            weights = self.fusion.input_weights(inputs_mask, collaborative.dtype).unsqueeze(-1)
            modalities = sum(w * projection() for w, projection in zip(weights[1:], self.projections))
            return weights[0] * collaborative + scale * modalities
        projected = [scale * projection() for projection in self.projections]
        return self.fusion(torch.stack([collaborative, *projected]), inputs_mask)

    def forward(self):
        """Final embeddings: users [n_users, d] (LightGCN's), items [n_items, d] (fused)."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        propagated = mean_propagation(self.adjacency, ego, self.n_layers)
        users, items = torch.split(propagated, [self.n_users, self.n_items])
        return users, self.fuse_items(items)
