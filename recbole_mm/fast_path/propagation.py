"""RecBole's LightGCN on recbole_mm's propagation layer.

RecBole's ``LightGCN.forward`` multiplies a COO adjacency with ``torch.sparse.mm``, whose backward
transposes and converts the matrix on every step; on CPU that product is most of an epoch. On the
fast path the model's adjacency becomes the CSR matrix of :func:`recbole_mm.layers.normalized_adjacency`
(the same values: RecBole adds 1e-7 to the degrees, a relative change below float32's precision)
and its forward runs :func:`recbole_mm.layers.mean_propagation`, whose backward reuses the matrix.
Parameters, loss and scores are untouched.
"""

import types

import torch
from recbole.model.general_recommender import LightGCN

from recbole_mm.layers import mean_propagation, normalized_adjacency


def _lightgcn_forward(self):
    """RecBole's LightGCN forward: users [n_users, d], items [n_items, d]."""
    ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
    return torch.split(mean_propagation(self.norm_adj_matrix, ego, self.n_layers), [self.n_users, self.n_items])


def accelerate_propagation(model):
    """Give a RecBole LightGCN (exactly that class) the shared propagation layer; True if done."""
    if type(model) is not LightGCN:
        return False
    model.norm_adj_matrix = normalized_adjacency(model.interaction_matrix, device=model.device)
    model.forward = types.MethodType(_lightgcn_forward, model)
    return True
