"""How good the pseudo-labels a run trains on are: scored against the unlabeled videos' true
labels, per step (the training curve's `pl_accuracy`) and per class over the run
(`<run>.pseudo_labels.csv`)."""

from __future__ import annotations

import csv
import io

import torch


class PseudoLabelDiagnostics:
    """How good the pseudo-labels a method trains on are: scored against the unlabeled videos'
    true labels, which the split holds but no loss reads. Each step's accuracy of the
    pseudo-labels used (mask 1) goes into the training curve (`pl_accuracy`, NaN when none was
    used; `pl_mask`, the method's own log, is their coverage); per true class, the clips seen,
    used and correctly labeled are counted over the whole run (`table`). All on the device, so
    scoring never waits for it."""

    COLUMNS = ("class", "seen", "used", "correct", "coverage", "accuracy")

    def __init__(self, true_labels: torch.Tensor, num_classes: int):
        self.true = true_labels
        self.counts = torch.zeros(num_classes, 3, device=true_labels.device)  # seen, used, correct

    def score(self, idx_u: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        true = self.true[idx_u]
        mask = mask.float()
        correct = (target == true).float() * mask
        self.counts.index_add_(0, true, torch.stack([torch.ones_like(mask), mask, correct], 1))
        used = mask.sum()
        return torch.where(used > 0, correct.sum() / used.clamp_min(1), torch.full_like(used, float("nan")))

    def table(self, class_names) -> str:
        """Per true class: clips seen, pseudo-labels used, correct ones, coverage and accuracy."""
        return csv_text(diagnostics_rows(class_names, self.counts), self.COLUMNS)


def diagnostics_rows(class_names, counts: torch.Tensor | None) -> list[dict]:
    rows = []
    for name, (seen, used, correct) in zip(class_names, counts.cpu().tolist() if counts is not None else []):
        rows.append({"class": name, "seen": int(seen), "used": int(used), "correct": int(correct),
                     "coverage": used / seen if seen else float("nan"),
                     "accuracy": correct / used if used else float("nan")})
    return rows


def csv_text(rows: list[dict], keys) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(keys))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
