"""Captions for text-to-image GAN-CLS (Reed et al. 2016): a character vocabulary, `encode` from
strings to padded token arrays, and `TextEncoder`, a char-CNN-RNN sentence embedding trained end
to end with the network that owns it."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .speedups import host_to_device

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 ,.-'"
PAD = 0  # token 0 pads every caption to max_len; characters are 1..len(CHARS)
VOCAB_SIZE = len(CHARS) + 1
_TOKEN = {c: i + 1 for i, c in enumerate(CHARS)}


def encode(captions: list[str], max_len: int) -> np.ndarray:
    """(N, max_len) int64 tokens of the lowercased captions, right-padded with PAD."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    out = np.full((len(captions), max_len), PAD, np.int64)
    for i, caption in enumerate(captions):
        text = caption.lower()
        if not text:
            raise ValueError(f"caption {i} is empty")
        if len(text) > max_len:
            raise ValueError(f"caption {i} ({caption!r}) has {len(text)} characters, more than "
                             f"max_len={max_len}")
        unknown = sorted(set(text) - _TOKEN.keys())
        if unknown:
            raise ValueError(f"caption {i} ({caption!r}) has characters outside the vocabulary: "
                             f"{unknown}; allowed: a-z, 0-9, space and , . - '")
        out[i, :len(text)] = [_TOKEN[c] for c in text]
    return out


def encode_per_sample(text: list[list[str]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every sample's captions as (N, K, max_len) tokens, K the most captions any sample has
    (rows past a sample's own count are all PAD), and the (N,) counts. ValueError names the
    sample and the caption at fault."""
    k = max((len(caps) for caps in text), default=1)
    tokens = np.full((len(text), k, max_len), PAD, np.int64)
    counts = np.zeros(len(text), np.int64)
    for i, caps in enumerate(text):
        try:
            tokens[i, :len(caps)] = encode(caps, max_len)
        except ValueError as e:
            raise ValueError(f"sample {i}: {e}") from None
        counts[i] = len(caps)
    return tokens, counts


def pick_captions(tokens: Tensor, counts: Tensor, gen: torch.Generator) -> Tensor:
    """One of each sample's captions, uniformly: (N, K, L) tokens and (N,) counts -> (N, L).
    The draw comes from `gen` (CPU), so a seeded epoch replays it exactly."""
    u = host_to_device(torch.rand(len(counts), generator=gen), counts.device)
    idx = (u * counts).long().clamp(max=tokens.shape[1] - 1)
    return tokens[torch.arange(len(idx), device=tokens.device), idx]


def decode(tokens: np.ndarray) -> list[str]:
    """The lowercased captions back from `encode`'s tokens (padding dropped)."""
    return ["".join(CHARS[t - 1] for t in row if t != PAD) for row in np.asarray(tokens)]


class TextEncoder(nn.Module):
    """Tokens (N, L) int64 -> sentence embedding (N, out_dim): character embedding -> two Conv1d
    -> GRU -> mean over the caption's own (non-pad) positions -> Linear. Trailing padding does
    not change the result: pad positions are zeroed before each conv (as the conv's own zero
    padding would be) and the GRU runs forward only, so a position never sees what follows."""

    def __init__(self, out_dim: int, dim: int = 128, convs: int = 2):
        super().__init__()
        self.chars = nn.Embedding(VOCAB_SIZE, dim, padding_idx=PAD)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=1) for _ in range(convs))
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2:
            raise ValueError(f"text must be (N, L) tokens, got shape {tuple(tokens.shape)}")
        tokens = tokens.long()
        mask = (tokens != PAD).unsqueeze(1).to(self.out.weight.dtype)  # (N, 1, L)
        h = self.chars(tokens).transpose(1, 2)  # (N, dim, L); PAD embeds to zeros
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2) * mask
        h, _ = self.gru(h.transpose(1, 2))  # (N, L, dim)
        mask = mask.transpose(1, 2)
        return self.out((h * mask).sum(1) / mask.sum(1).clamp(min=1))
