"""FER+ majority protocol and its join to FER-2013."""

from __future__ import annotations

import numpy as np

from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus, majority_labels
from conftest import FER2013, need


def test_majority_rule():
    votes = np.array([
        [6, 0, 0, 1, 3, 0, 0, 0, 0, 0],  # neutral 6 of 9 (single vote dropped) -> neutral
        [4, 4, 0, 0, 0, 0, 0, 0, 2, 0],  # tie, no majority -> excluded
        [0, 0, 0, 0, 0, 0, 0, 0, 9, 1],  # unknown -> excluded
        [0, 0, 0, 0, 0, 0, 0, 7, 3, 0],  # contempt -> index 7
    ], np.float32)
    assert list(majority_labels(votes)) == [0, -1, -1, 7]


def test_test_split_matches_the_published_protocol_size():
    split = load_ferplus(need(FER2013), "PrivateTest")
    assert 3100 <= len(split) <= 3200  # FER+ majority test set: ~3,137-3,173 faces depending on tie rules
    counts = np.bincount(split.labels, minlength=8)
    assert counts[FERPLUS_EMOTIONS.index("neutral")] > counts[FERPLUS_EMOTIONS.index("happy")] > 0
    assert split.votes.shape == (len(split), 8) and split.images.shape[1:] == (48, 48)
    assert (split.votes.argmax(1) == split.labels).mean() > 0.95
