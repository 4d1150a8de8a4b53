r"""MMLGCN: one LightGCN per modality, item embeddings initialised from the projected modality.

From the related work of the seed paper "Fusion of collaborative and multimodal embeddings for
recommendation using LightGCN"; written from its description, no code of its reference
implementation is used. Graph 0 is the collaborative LightGCN (ID embeddings); graph ``j`` has
its own user embeddings and, as item layer-0 embeddings, the projected features of modality ``j``
(trainable with ``projection: unfrozen``, the default here). Each graph propagates over the same
user-item graph; the final user and item embeddings fuse the graphs' outputs (items leave out
the graphs of modalities they lack). BPR loss, dot-product score.
"""

import torch
from torch import nn

from recbole_mm.layers import mean_propagation
from recbole_mm.layers.fusion import Fusion
from recbole_mm.model import MultimodalGraphRecommender


class MMLGCN(MultimodalGraphRecommender):
    """A LightGCN per modality plus the collaborative one, outputs fused.

    Config keys (``properties/model/MMLGCN.yaml``): those of LF-MMLGCN except ``weighting``;
    ``fusion`` combines the graphs' outputs, separately for users and for items. A cold item
    (``cold_item_mask``) leaves the collaborative graph out of its fusion: its embedding comes from
    the modality graphs, where it is an isolated node whose layer 0 is its projected feature.
    """

    content_only_cold_items = True

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        n_graphs = len(self.projections) + 1
        self.modality_user_embeddings = nn.ModuleList(
            nn.Embedding(self.n_users, self.embedding_size) for _ in self.projections
        )
        for embedding in self.modality_user_embeddings:
            nn.init.xavier_uniform_(embedding.weight)
        self.user_fusion = Fusion(config["fusion"], n_graphs, self.embedding_size)
        self.item_fusion = Fusion(config["fusion"], n_graphs, self.embedding_size)

    def forward(self):
        """Final embeddings: users [n_users, d], items [n_items, d], fused over the graphs."""
        tables = [(self.user_embedding.weight, self.item_embedding.weight)]
        tables += [
            (users.weight, projection())
            for users, projection in zip(self.modality_user_embeddings, self.projections)
        ]
        outputs = [
            torch.split(
                mean_propagation(self.adjacency, torch.cat(pair), self.n_layers),
                [self.n_users, self.n_items],
            )
            for pair in tables
        ]
        users = torch.stack([u for u, _ in outputs])  # [graphs, n_users, d]
        items = torch.stack([i for _, i in outputs])  # [graphs, n_items, d]
        user_mask = torch.ones(users.shape[:2], dtype=torch.bool, device=users.device)
        item_mask = torch.cat([~self.cold_item_mask.unsqueeze(0), self.modality_mask])
        return self.user_fusion(users, user_mask), self.item_fusion(items, item_mask)

    def layer0_embeddings(self, user, pos_item, neg_item):
        """L2 also covers the modality graphs' user embeddings of the batch."""
        return super().layer0_embeddings(user, pos_item, neg_item) + [
            embedding(user) for embedding in self.modality_user_embeddings
        ]
