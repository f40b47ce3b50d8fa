"""Cross-entropy of a linear output head, computed a chunk of tokens at a time.

    loss = linear_cross_entropy(h, weight, targets)   # == F.cross_entropy(h @ weight.T, targets)

Why: with a large vocabulary the plain path's logits dominate a small proxy's memory and time. The
seed study's 25M shape at 16 x 1024 tokens per step and 50,304 ids holds (16384, 50304) logits in
bf16, a float32 copy for the softmax, and a float32 gradient of the same size: about 8 GB, most of
the step's memory traffic. Here the logits of at most CHUNK_ELEMENTS entries exist at once.

How: the loss is a scalar per model, so d loss / d logits = (softmax - onehot) / n_valid is known
as soon as a chunk's logits are. The forward pass therefore computes, chunk by chunk, the loss,
the gradient with respect to the hidden states (softmax - onehot) @ W, and accumulates the
gradient with respect to the head (softmax - onehot)^T @ h in float32; backward only scales them
by the incoming gradient. No logits are kept and none are recomputed: the head costs the same
6 x tokens x vocab x width FLOPs as the plain path. Without gradients (evaluation) only the loss
is computed, chunk by chunk.

Shapes: h (N, C) and weight (V, C) with targets (N,) int64 give a scalar; with a leading model axis
h (M, N, C), weight (M, V, C), targets (M, N) give (M,) losses, one mean per model (bomix's stacked
trainer). Targets equal to ignore_index (-100, as F.cross_entropy) count in no mean. Under CUDA
autocast the matmuls run in bf16 and the softmax in float32, as the plain path does.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 2 ** 26   # logits entries per chunk, over all models: 64M float32 = 256 MiB, plus the
                           # bf16 matmul output; seed25m's 16 x 1024 tokens make 13 chunks of 1,334 tokens,
                           # each matmul (1334 x 192) x (192 x 50304) large enough to keep a GPU busy
FUSED_CE_MIN_VOCAB = 16384  # the trainer's default: chunked when the vocabulary has at least this many
                            # ids (seed25m's 50,304), plain below (the 8,192-id presets), where a step's
                            # logits are small and one plain matmul launches fewer kernels


def chunk_rows(n_models: int, vocab: int) -> int:
    """Tokens per chunk so that n_models x rows x vocab logits stay within CHUNK_ELEMENTS (at least 1)."""
    return max(1, CHUNK_ELEMENTS // (n_models * vocab))


def _chunk_logits(h, weight):
    """(M, n, C) x (M, V, C) -> (M, n, V) float32 logits (bf16 matmul under autocast, as nn.Linear)."""
    return torch.matmul(h, weight.transpose(1, 2)).float()


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy per model with both gradients computed in the forward pass (see the module
    docstring); inputs already carry the model axis: h (M, N, C), weight (M, V, C), targets (M, N)."""

    @staticmethod
    def forward(ctx, h, weight, targets, chunk: int, ignore_index: int):
        M, N, _ = h.shape
        valid = targets != ignore_index
        count = valid.sum(-1).to(torch.float32)                  # (M,) tokens in each model's mean
        scale = (1.0 / count.clamp_min(1)).view(M, 1, 1)
        safe = torch.where(valid, targets, 0)
        loss_sum = torch.zeros(M, dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        for start in range(0, N, chunk):
            hc, tc, vc = h[:, start:start + chunk], safe[:, start:start + chunk], valid[:, start:start + chunk]
            logits = _chunk_logits(hc, weight)                   # (M, n, V)
            lse = torch.logsumexp(logits, dim=-1)                # (M, n)
            picked = logits.gather(-1, tc.unsqueeze(-1)).squeeze(-1)
            loss_sum += ((lse - picked) * vc).sum(-1)
            # d loss / d logits, in place of the logits: (softmax - onehot) * valid / count
            probs = logits.sub_(lse.unsqueeze(-1)).exp_()
            probs.scatter_add_(-1, tc.unsqueeze(-1), -torch.ones_like(picked).unsqueeze(-1))
            probs.mul_(vc.unsqueeze(-1) * scale)
            grad_h[:, start:start + chunk] = torch.matmul(probs, weight)
            grad_w += torch.matmul(probs.transpose(1, 2), hc).float()
        ctx.save_for_backward(grad_h, grad_w)
        ctx.weight_dtype = weight.dtype
        return loss_sum / count

    @staticmethod
    def backward(ctx, grad_loss):
        grad_h, grad_w = ctx.saved_tensors
        g = grad_loss.view(-1, 1, 1)
        return (grad_h * g.to(grad_h.dtype)), (grad_w * g).to(ctx.weight_dtype), None, None, None


@torch.no_grad()
def _loss_only(h, weight, targets, chunk: int, ignore_index: int):
    """The same losses without gradients (evaluation): chunked logsumexp, nothing kept."""
    valid = targets != ignore_index
    safe = torch.where(valid, targets, 0)
    loss_sum = torch.zeros(h.shape[0], dtype=torch.float32, device=h.device)
    for start in range(0, h.shape[1], chunk):
        logits = _chunk_logits(h[:, start:start + chunk], weight)
        picked = logits.gather(-1, safe[:, start:start + chunk].unsqueeze(-1)).squeeze(-1)
        loss_sum += ((torch.logsumexp(logits, dim=-1) - picked) * valid[:, start:start + chunk]).sum(-1)
    return loss_sum / valid.sum(-1).to(torch.float32)


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, chunk: int | None = None,
                         ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean cross-entropy (nats/token) of the logits h @ weight.T against targets, never holding all
    the logits at once.

    h (N, C), weight (V, C), targets (N,) -> scalar; h (M, N, C), weight (M, V, C), targets (M, N)
    -> (M,), one mean per model. chunk: tokens per chunk (per model); None = chunk_rows(M, V).
    Gradients flow to h and weight (not targets). A model whose targets are all ignore_index has a
    NaN loss, as F.cross_entropy gives.
    """
    single = h.dim() == 2
    if single:
        h, weight, targets = h.unsqueeze(0), weight.unsqueeze(0), targets.unsqueeze(0)
    if h.dim() != 3 or weight.dim() != 3 or targets.shape != h.shape[:2] or weight.shape[::2] != h.shape[::2]:
        raise ValueError(f"shapes must be h (N, C), weight (V, C), targets (N,), or each with a leading model axis, "
                         f"got h {tuple(h.shape)}, weight {tuple(weight.shape)}, targets {tuple(targets.shape)}")
    chunk = chunk or chunk_rows(h.shape[0], weight.shape[1])
    if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
        loss = _LinearCrossEntropy.apply(h, weight, targets, chunk, ignore_index)
    else:
        loss = _loss_only(h, weight, targets, chunk, ignore_index)
    return loss[0] if single else loss
