"""Softmax cross-entropy, fused with its gradient."""
import numpy as np


def softmax(logits):
    """logits: (N, K) -> probabilities (N, K), rows sum to 1."""
    # subtract the row max so exp cannot overflow
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, y):
    """logits: (N, K), y: (N,) int labels -> (mean loss, dlogits (N, K))."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    # log-sum-exp form: no log(0) even when a probability underflows
    loss = float(np.mean(np.log(sum_exp[:, 0]) - shifted[rows, y]))
    dlogits = exp / sum_exp
    dlogits[rows, y] -= 1
    dlogits /= n
    return loss, dlogits
