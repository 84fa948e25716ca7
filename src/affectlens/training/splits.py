"""Subject-disjoint splits: a person's faces are all on one side, or the score measures how well
the model recognises that person rather than the expression (numpy only)."""

from __future__ import annotations

import numpy as np


def _subject_order(subjects: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names, inverse, counts = np.unique(subjects, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(names))
    return order, inverse, counts


def subject_split(subjects, labels, fractions: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Face indices per split, no subject in two splits, each split near its share of the faces
    and of every class.

    Args:
        subjects: ``(n,)`` subject per face.
        labels: ``(n,)`` label per face (balanced across splits as far as subjects allow).
        fractions: split name → share, e.g. ``{"train": .7, "val": .15, "test": .15}``.
        seed: subject shuffling seed.

    Returns:
        split name → sorted face indices (a split may be empty when there are too few subjects).

    Example:
        >>> parts = subject_split(subjects, labels, {"train": .8, "val": .2})
    """
    subjects, labels = np.asarray(subjects), np.asarray(labels)
    names = list(fractions)
    share = np.array([fractions[k] for k in names], float)
    share = share / share.sum()
    classes, y = np.unique(labels, return_inverse=True)
    order, inverse, _ = _subject_order(subjects, seed)
    per_subject = np.zeros((inverse.max() + 1, len(classes)))
    np.add.at(per_subject, (inverse, y), 1)
    totals = per_subject.sum(0)
    have = np.zeros((len(names), len(classes)))
    assign = np.empty(len(per_subject), int)
    # Largest subjects first (then shuffled order), each to the split that most lacks its classes.
    for s in sorted(order, key=lambda s: -per_subject[s].sum()):
        want = share[:, None] * totals[None] - have  # deficit per split and class
        gain = (want * per_subject[s][None]).sum(1) / max(per_subject[s].sum(), 1)
        k = int(np.argmax(gain))
        assign[s] = k
        have[k] += per_subject[s]
    return {name: np.flatnonzero(assign[inverse] == k) for k, name in enumerate(names)}


def grouped_folds(subjects, labels, k: int, seed: int = 0) -> np.ndarray:
    """Fold number (0..k-1) per face for a subject-disjoint (grouped) k-fold, folds balanced
    by faces and classes.

    Raises:
        ValueError: fewer subjects than folds, or ``k < 2``.
    """
    subjects = np.asarray(subjects)
    n_subjects = len(np.unique(subjects))
    if k < 2 or n_subjects < k:
        raise ValueError(f"a {k}-fold split needs k >= 2 and at least k subjects; the data has {n_subjects}")
    parts = subject_split(subjects, labels, {i: 1.0 / k for i in range(k)}, seed)
    fold = np.empty(len(subjects), int)
    for i, idx in parts.items():
        fold[idx] = i
    return fold


def check_disjoint(subjects, parts: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` when a subject appears in two parts (a guard, never expected)."""
    seen: dict[str, str] = {}
    for name, idx in parts.items():
        for s in set(np.asarray(subjects)[idx].tolist()):
            if s in seen and seen[s] != name:
                raise ValueError(f"subject {s!r} is in both {seen[s]} and {name}")
            seen[s] = name
