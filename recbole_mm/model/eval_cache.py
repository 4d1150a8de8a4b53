"""Embeddings computed once per evaluation: full-sort scoring asks for every item's (or every
user's) final embedding once per batch of users, and these only change with the weights."""

import torch


class EvalCache:
    """Mixin for an ``nn.Module``: :meth:`evaluation_cached` keeps a value computed from the
    weights while the model is in eval mode, and drops it whenever the weights may change or a
    stale value could be served: on ``train()``/``eval()``, ``load_state_dict`` and
    :meth:`drop_eval_cache` (which ``calculate_loss`` calls before a training step).

    List it before the ``nn.Module`` base: ``class Model(EvalCache, GeneralRecommender)``.
    """

    _eval_cache = None

    def evaluation_cached(self, compute):
        """``compute()`` (a tensor or a tuple of tensors); in eval mode computed once and kept,
        detached, until the cache is dropped. In train mode always computed, with its graph."""
        if self.training:
            return compute()
        if self._eval_cache is None:
            value = compute()
            self._eval_cache = (
                value.detach() if isinstance(value, torch.Tensor) else tuple(v.detach() for v in value)
            )
        return self._eval_cache

    def drop_eval_cache(self):
        """Forget the cached value (the weights are about to change)."""
        self._eval_cache = None

    def train(self, mode=True):
        """``nn.Module.train``; drops the cache."""
        self.drop_eval_cache()
        return super().train(mode)

    def load_state_dict(self, *args, **kwargs):
        """``nn.Module.load_state_dict``; drops the cache."""
        self.drop_eval_cache()
        return super().load_state_dict(*args, **kwargs)
