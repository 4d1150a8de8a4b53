r"""EF-MMLGCN: LightGCN with early fusion of multimodal item features.

From the related work of the seed paper "Fusion of collaborative and multimodal embeddings for
recommendation using LightGCN"; written from its description, no code of its reference
implementation is used. The item's modalities are fused first,
:math:`m_i = \mathrm{fuse}(p_i^1, \dots, p_i^n)`, then concatenated with the item's LightGCN
embedding and projected back to ``d``: :math:`\tilde e_i = W [e_i ; m_i] + b`. Users keep their
LightGCN embedding; BPR loss, dot-product score.
"""

import torch
from torch import nn

from recbole_mm.layers import mean_propagation
from recbole_mm.layers.fusion import Fusion
from recbole_mm.model import MultimodalGraphRecommender


class EFMMLGCN(MultimodalGraphRecommender):
    """LightGCN item embeddings concatenated with the fused modalities, then projected.

    Config keys (``properties/model/EFMMLGCN.yaml``): those of LF-MMLGCN except ``weighting``;
    ``fusion`` combines the modalities only. An item with no modality is concatenated with zeros;
    so is a cold item (``cold_item_mask``) in place of its collaborative embedding.
    """

    content_only_cold_items = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.fusion = Fusion(config["fusion"], len(self.projections), self.embedding_size)
        self.output = nn.Linear(2 * self.embedding_size, self.embedding_size)

    def forward(self):
        """Final embeddings: users [n_users, d] (LightGCN's), items [n_items, d]."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        users, items = torch.split(
            mean_propagation(self.adjacency, ego, self.n_layers), [self.n_users, self.n_items]
        )
        items = items.masked_fill(self.cold_item_mask.unsqueeze(-1), 0.0)
        modalities = self.fusion(self.projected_modalities(), self.modality_mask)  # none: zeros
        return users, self.output(torch.cat([items, modalities], dim=-1))
