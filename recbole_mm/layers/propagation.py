"""Graph propagation over the user-item bipartite graph, shared by recbole_mm's graph models.

The graph has ``N = n_users + n_items`` nodes, users first: node ``u`` is user ``u`` and node
``n_users + i`` is item ``i`` (RecBole's internal ids, so row 0 of each block is the padding id, a
node without edges). Its symmetric normalised adjacency ``D^-1/2 A D^-1/2`` is an ``[N, N]`` torch
sparse CSR tensor; embeddings are ``[N, d]`` dense tensors, users' rows first.

Because the matrix is symmetric, the gradient of ``y = A x`` with respect to ``x`` is
``A @ grad_y``: :class:`SymmetricSparseMatmul` reuses the forward matrix in backward, where plain
autograd would transpose (and convert) the sparse matrix on every backward pass.
"""

import numpy as np
import scipy.sparse as sp
import torch


def normalized_adjacency(interactions, dtype=torch.float32, device=None):
    """The symmetric normalised adjacency ``D^-1/2 A D^-1/2`` of a user-item interaction matrix.

    Every stored (user, item) pair is one edge of weight 1, whatever its value and however often it
    is repeated (as RecBole's LightGCN builds it); a node's degree is its number of distinct
    neighbours, and nodes without edges (the padding ids) have empty rows.

    Args:
        interactions (scipy.sparse matrix): ``[n_users, n_items]``, e.g.
            ``dataset.inter_matrix(form="coo")``.
        dtype (torch.dtype): dtype of the values.
        device (torch.device or str or None): where the tensor is built.

    Returns:
        torch.Tensor: sparse CSR ``[n_users + n_items, n_users + n_items]``, sorted column indices.
    """
    coo = sp.coo_matrix(interactions)
    n_users, n_items = coo.shape
    pairs = np.unique(np.stack([coo.row, coo.col]).astype(np.int64), axis=1)
    users, items = pairs
    user_degree = np.bincount(users, minlength=n_users)
    item_degree = np.bincount(items, minlength=n_items)
    # every edge joins two nodes of degree >= 1, so no division by zero
    weights = 1.0 / np.sqrt(user_degree[users] * item_degree[items].astype(np.float64))
    size = n_users + n_items
    rows = np.concatenate([users, items + n_users])
    cols = np.concatenate([items + n_users, users])
    matrix = sp.csr_matrix((np.concatenate([weights, weights]), (rows, cols)), shape=(size, size))
    matrix.sort_indices()
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data).to(dtype),
        size=(size, size),
        device=device,
        check_invariants=True,  # once per matrix, O(nnz): cheap next to building it
    )


class SymmetricSparseMatmul(torch.autograd.Function):
    """``A @ x`` for a constant symmetric sparse ``A`` ``[N, N]`` and dense ``x`` ``[N, d]``.

    Backward computes ``A @ grad`` with the same matrix (valid only because ``A`` is symmetric);
    ``A`` itself gets no gradient.
    """

    @staticmethod
    def forward(ctx, adjacency, x):
        ctx.save_for_backward(adjacency)
        return torch.sparse.mm(adjacency, x)

    @staticmethod
    def backward(ctx, grad_output):
        (adjacency,) = ctx.saved_tensors
        grad_x = torch.sparse.mm(adjacency, grad_output) if ctx.needs_input_grad[1] else None
        return None, grad_x


def propagate(adjacency, x):
    """One propagation step ``A @ x``.

    Args:
        adjacency (torch.Tensor): symmetric sparse ``[N, N]`` (from :func:`normalized_adjacency`);
            it must not require grad.
        x (torch.Tensor): ``[N, d]``.

    Returns:
        torch.Tensor: ``[N, d]``.
    """
    if adjacency.requires_grad:
        raise ValueError(
            "propagate() treats the adjacency as a constant; pass adjacency.detach() (a learned "
            "adjacency needs plain torch.sparse.mm)"
        )
    return SymmetricSparseMatmul.apply(adjacency, x)


def mean_propagation(adjacency, x, n_layers):
    """LightGCN's layer combination: the mean of ``x, A x, A^2 x, ..., A^n_layers x``.

    Args:
        adjacency (torch.Tensor): symmetric sparse ``[N, N]``.
        x (torch.Tensor): layer-0 embeddings ``[N, d]`` (users' rows, then items').
        n_layers (int): number of propagation steps (0 returns ``x``).

    Returns:
        torch.Tensor: ``[N, d]``; split it with ``torch.split(out, [n_users, n_items])``.
    """
    total = x
    layer = x
    for _ in range(n_layers):
        layer = propagate(adjacency, layer)
        total = total + layer
    return total / (n_layers + 1)
