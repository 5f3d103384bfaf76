"""Training on the labeled clips only: the supervised floor every SSL method must beat."""

from __future__ import annotations

from .base import METHODS, StudentMethod, labeled_ce


@METHODS.register
class Supervised(StudentMethod):
    """Cross-entropy on the labeled clips only: the floor every SSL method must beat."""

    name = "supervised"

    def loss(self, student, batch, step=0):
        return labeled_ce(student, batch)
