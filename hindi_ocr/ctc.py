"""The CTC side of the reader's pretraining (``hindi_ocr.pretrain``): the order in which a folded line's image
tokens meet a reader, and a linear CTC head over them, so the vision tower gets a per-character signal from the first
step. Training only: the head is never saved with the model."""

from __future__ import annotations

import torch

from .examples import fold_pieces


def charset(sources: dict) -> list[str]:
    chars = {c for lines in sources.values() for words in lines for w in words for c in w} | {" "}
    chars |= {chr(c) for c in range(0x0900, 0x0980)}
    return sorted(chars)


def reading_order(image, side: int) -> list[int]:
    """Indices of the ``side`` x ``side`` image tokens in the order a reader meets them once the line ``image``
    (before folding) is folded.

    ``fold`` stacks k pieces of the line; a token row belongs to the piece under its centre. Within a piece the
    tokens go column by column (top to bottom inside a column): the order CTC needs, monotonic along the line.
    """
    pieces = fold_pieces(image)
    keys = []
    for row in range(side):
        piece = piece_of_row(row, pieces, side)
        for col in range(side):
            keys.append((piece, col, row, row * side + col))
    return [k[-1] for k in sorted(keys)]


def piece_of_row(row: int, pieces: int, side: int) -> int:
    """The folded piece under the centre of grid row ``row`` (of ``side``) of a line folded into ``pieces``."""
    return min(pieces - 1, int((row + 0.5) * pieces / side))


class CtcHead(torch.nn.Module):
    def __init__(self, hidden: int, n_chars: int):
        super().__init__()
        self.proj = torch.nn.Linear(hidden, n_chars + 1)  # index 0: the CTC blank

    def forward(self, features):
        return self.proj(features).log_softmax(-1)


def ctc_loss(head, features, orders, texts, index):
    """CTC of the projected image tokens (B, side*side, hidden), each sample's tokens taken in ``orders``."""
    order = torch.tensor(orders, device=features.device)
    feats = torch.stack([features[i, order[i]] for i in range(len(texts))])
    return ctc_of_frames(head, feats, torch.full((len(texts),), feats.shape[1]), texts, index)


def column_frames(grid, images) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames along the line from the vision tower's feature grid (B, C, G, G), as a CRNN reads: for each folded
    piece of the line, each grid column averaged over the rows that show that piece; returns (B, T, C) and the
    lengths (k * G for a line folded into k pieces)."""
    side = grid.shape[-1]
    frames = []
    for feats, image in zip(grid, images):
        pieces = fold_pieces(image)
        rows = torch.tensor([piece_of_row(r, pieces, side) for r in range(side)], device=grid.device)
        frames.append(torch.cat([feats[:, rows == p].mean(1).T for p in range(pieces)]))
    lengths = torch.tensor([len(f) for f in frames])
    return torch.nn.utils.rnn.pad_sequence(frames, batch_first=True), lengths


def ctc_of_frames(head, feats, lengths, texts, index):
    """CTC loss of frames (B, T, C) of the given lengths against each text's characters (``index``: char -> id)."""
    log_probs = head(feats).transpose(0, 1)  # (T, B, C)
    targets = [torch.tensor([index.get(c, 0) for c in t if c in index]) for t in texts]
    device = log_probs.device
    return torch.nn.functional.ctc_loss(log_probs, torch.cat(targets).to(device), lengths.to(device),
                                        torch.tensor([len(t) for t in targets], device=device), blank=0,
                                        zero_infinity=True)
