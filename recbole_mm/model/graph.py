"""``MultimodalGraphRecommender``: what the LightGCN-based multimodal models share.

This base class builds the collaborative (ID) embedding tables, one projection per modality and the
normalised user-item graph, and gives a BPR loss with L2 on the batch's layer-0 embeddings,
dot-product scoring, and final embeddings cached between full-sort evaluation batches. A subclass
implements :meth:`forward`, returning the final user and item embeddings.
"""

import torch
import torch.nn.functional as F
from recbole.utils import InputType
from torch import nn

from recbole_mm.layers import normalized_adjacency
from recbole_mm.layers.fusion import ModalityProjection
from recbole_mm.model.eval_cache import EvalCache
from recbole_mm.model.multimodal import MultimodalRecommender


class MultimodalGraphRecommender(EvalCache, MultimodalRecommender):
    """Base of LightGCN-style multimodal models (BPR-trained, dot-product scored).

    Config keys: ``embedding_size``, ``n_layers``, ``reg_weight``, ``projection`` (see
    :class:`~recbole_mm.layers.fusion.ModalityProjection`), plus those of
    :class:`~recbole_mm.model.MultimodalRecommender`. After ``__init__``:

    - ``self.user_embedding`` / ``self.item_embedding``: layer-0 ID embeddings [n, d] (Xavier);
    - ``self.projections``: one :class:`ModalityProjection` per modality (``projection()`` -> [n_items, d]);
    - ``self.modality_mask``: [n_modalities, n_items] bool, which items have which modality;
    - ``self.adjacency``: the symmetric normalised adjacency [n_users + n_items] ^ 2 (sparse).
    """

    input_type = InputType.PAIRWISE
    fast_path_compatible = True  # calculate_loss reads only user, item and negative item ids

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.n_layers = config["n_layers"]
        self.reg_weight = config["reg_weight"]
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.projections = nn.ModuleList(
            ModalityProjection(features, self.embedding_size, config["projection"])
            for features in self.item_features.values()
        )
        self.register_buffer(
            "modality_mask", torch.stack(list(self.item_feature_masks.values())), persistent=False
        )
        self.register_buffer(
            "adjacency",
            normalized_adjacency(dataset.inter_matrix(form="coo").astype("float32")),
            persistent=False,
        )

    def forward(self):
        """Final embeddings: users [n_users, d], items [n_items, d]."""
        raise NotImplementedError

    def layer0_embeddings(self, user, pos_item, neg_item):
        """The batch's layer-0 embeddings the L2 term penalises (list of tensors [B, d])."""
        return [self.user_embedding(user), self.item_embedding(pos_item), self.item_embedding(neg_item)]

    def calculate_loss(self, interaction):
        """BPR loss + ``reg_weight`` x squared L2 of the batch's layer-0 embeddings / (2 B)."""
        self.drop_eval_cache()
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        users, items = self.forward()
        u = users[user]
        loss = -F.logsigmoid((u * items[pos_item]).sum(-1) - (u * items[neg_item]).sum(-1)).mean()
        reg = sum(e.pow(2).sum() for e in self.layer0_embeddings(user, pos_item, neg_item))
        return loss + self.reg_weight * reg / (2 * user.shape[0])

    def final_embeddings(self):
        """``forward()``, cached while the model is in eval mode."""
        return self.evaluation_cached(self.forward)

    def predict(self, interaction):
        """Scores of the (user, item) pairs: [B]."""
        users, items = self.final_embeddings()
        return (users[interaction[self.USER_ID]] * items[interaction[self.ITEM_ID]]).sum(-1)

    def full_sort_predict(self, interaction):
        """Scores of every item for the batch's users, flattened: [B * n_items]."""
        users, items = self.final_embeddings()
        return (users[interaction[self.USER_ID]] @ items.T).view(-1)

    def projected_modalities(self):
        """The projected features of every modality, stacked: [n_modalities, n_items, d]."""
        return torch.stack([projection() for projection in self.projections])
