"""The proxy language model: a small GPT.

Token embedding plus learned positional embedding, `n_layer` pre-norm blocks (LayerNorm, causal
self-attention, LayerNorm, MLP with 4x width and GELU), a final LayerNorm and a linear head back to
the vocabulary. No biases anywhere (as in open_lm, the seed study's trainer), so a block holds exactly
12 * n_embd**2 weights plus two LayerNorm scales. The output head shares the token embedding's matrix
unless `tie_embeddings=False` (the seed study's 25M proxy is untied; see PRESETS).

Shapes: token ids (B, T) int64 with T <= block_size; logits (B, T, vocab_size); loss in nats/token.
GPT(config, fused_ce=True) computes the loss with bomix.train.fused_ce.linear_cross_entropy, which
never holds the whole (B, T, vocab) logits; forward then returns no logits with the loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from bomix.train.fused_ce import linear_cross_entropy


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 8192       # tokens; a dataset's tokenizer decides it (DomainData.vocab_size)
    block_size: int = 128        # context length in tokens
    n_layer: int = 2             # transformer blocks
    n_head: int = 2              # attention heads; n_embd must divide by it
    n_embd: int = 64             # width of the residual stream
    dropout: float = 0.0         # proxies train < 1 epoch of fresh windows: no dropout
    tie_embeddings: bool = True  # share the token embedding with the output head

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={self.n_embd}, n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict:
        return asdict(self)


# Named sizes. The vocabulary here is the default for recipes and throughput estimates; training on a
# dataset replaces it with the dataset's own. Parameters (num_params, total / non-embedding):
#   seed25m  24.83M / 5.31M at vocab 50304: the seed study's open_lm_25m (width 192, 12 layers, 12
#            heads, untied head), reported as 24.7M / 5.3M (open_lm uses rotary positions, we add 197k
#            learned ones). 20 tokens per parameter gives ~500M tokens, the seed study's budget.
#   5m       5.31M / 3.15M at vocab 8192
#   1.5m     1.48M / 0.39M at vocab 8192
#   small    0.74M / 0.20M at vocab 8192; 0.23M with bytes: a CPU trial of a few minutes
#   tiny     0.45M / 0.056M at vocab 8192; 74k with bytes, 86k with a 512-id BPE: a CPU trial in
#            well under a minute on one core (tests use it). On CPU prefer bytes or a small BPE: the
#            embedding, hence the default token budget, grows with the vocabulary.
PRESETS: dict[str, GPTConfig] = {
    "seed25m": GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=192, tie_embeddings=False),
    "5m": GPTConfig(vocab_size=8192, block_size=256, n_layer=4, n_head=8, n_embd=256),
    "1.5m": GPTConfig(vocab_size=8192, block_size=256, n_layer=2, n_head=4, n_embd=128),
    "small": GPTConfig(vocab_size=8192, block_size=256, n_layer=4, n_head=4, n_embd=64),
    "tiny": GPTConfig(vocab_size=8192, block_size=128, n_layer=2, n_head=2, n_embd=48),
}


def get_preset(name: str, **overrides) -> GPTConfig:
    """The named preset with fields replaced, e.g. get_preset("tiny", vocab_size=256)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return replace(PRESETS[name], **overrides)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # q, k, v side by side
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=False)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, *, fused_ce: bool = False):
        super().__init__()
        self.config = config
        self.fused_ce = fused_ce  # loss by chunks of tokens (bomix.train.fused_ce): no whole logits
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        # GPT-2 initialisation: N(0, 0.02), and the two projections that write into the residual
        # stream scaled down by sqrt(2 * n_layer) so its variance does not grow with depth.
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters (a tied head counted once). non_embedding=True leaves out the token
        and position embeddings and an untied head: the 12 * n_layer * n_embd**2 (+ LayerNorm) that
        scaling laws in the Kaplan style count."""
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.lm_head.weight.numel()
        return n

    def forward(self, idx, targets=None):
        """idx: (B, T) token ids. Returns (logits (B, T, vocab), mean cross-entropy in nats/token or
        None when targets (B, T) are not given). With fused_ce and targets the logits are None."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length must be <= block_size={self.config.block_size}, got {T}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if self.fused_ce and targets is not None:
            return None, linear_cross_entropy(x.view(B * T, -1), self.lm_head.weight, targets.reshape(-1))
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def count_params(config: GPTConfig, non_embedding: bool = False) -> int:
    """num_params of the model `config` describes, computed without building it (no memory)."""
    d, L = config.n_embd, config.n_layer
    blocks = L * (12 * d * d + 2 * d) + d  # attention 4d^2 + MLP 8d^2, two LayerNorms per block, ln_f
    if non_embedding:
        return blocks
    head = 0 if config.tie_embeddings else config.vocab_size * d
    return blocks + config.vocab_size * d + config.block_size * d + head
