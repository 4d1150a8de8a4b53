r"""BiasedMF: matrix factorisation with item biases, trained with BPR.

A complete, small model written as a recbole_mm plugin. It follows RecBole's model contract:
``calculate_loss`` for training, ``predict`` for given user-item pairs and ``full_sort_predict``
for ranking all items.

Score: :math:`\hat y_{ui} = \mathbf{p}_u^\top \mathbf{q}_i + b_i` (a user bias would cancel in
the pairwise loss, so there is none). Loss (Rendle et al., 2009, BPR):
:math:`-\ln \sigma(\hat y_{ui} - \hat y_{uj}) + \lambda \lVert\Theta_{batch}\rVert^2`.
"""

import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType
from torch import nn


class BiasedMF(GeneralRecommender):
    """Matrix factorisation with an item bias, trained with BPR.

    Config keys (defaults in ``BiasedMF.yaml``): ``embedding_size``, ``reg_weight``.
    """

    input_type = InputType.PAIRWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        self.item_bias = nn.Embedding(self.n_items, 1)
        nn.init.normal_(self.user_embedding.weight, std=0.01)
        nn.init.normal_(self.item_embedding.weight, std=0.01)
        nn.init.zeros_(self.item_bias.weight)

    def score(self, user, item):
        """Scores of pairs: ``user``, ``item`` [B] -> [B]."""
        preference = (self.user_embedding(user) * self.item_embedding(item)).sum(dim=-1)
        return preference + self.item_bias(item).squeeze(-1)

    def calculate_loss(self, interaction):
        """BPR loss of a batch of (user, positive item, negative item) triples (scalar)."""
        user = interaction[self.USER_ID]
        pos_item = interaction[self.ITEM_ID]
        neg_item = interaction[self.NEG_ITEM_ID]
        loss = -F.logsigmoid(self.score(user, pos_item) - self.score(user, neg_item)).mean()
        reg = (
            self.user_embedding(user).pow(2).sum()
            + self.item_embedding(pos_item).pow(2).sum()
            + self.item_embedding(neg_item).pow(2).sum()
            + self.item_bias(pos_item).pow(2).sum()
            + self.item_bias(neg_item).pow(2).sum()
        ) / user.shape[0]
        return loss + self.reg_weight * reg

    def predict(self, interaction):
        """Scores of the batch's (user, item) pairs: [B]."""
        return self.score(interaction[self.USER_ID], interaction[self.ITEM_ID])

    def full_sort_predict(self, interaction):
        """Scores of every item for the batch's users, flattened: [B * n_items]."""
        users = self.user_embedding(interaction[self.USER_ID])
        scores = users @ self.item_embedding.weight.T + self.item_bias.weight.T
        return scores.view(-1)

