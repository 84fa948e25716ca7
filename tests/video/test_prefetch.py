"""Decoding ahead in a thread keeps order, raises where the source failed, and stops early."""

from __future__ import annotations

import threading
import time

import pytest

from affectlens.video.prefetch import prefetched, source_frames
from affectlens.video.source import VideoSource
from conftest import VIDEOS, need


def test_order_and_all_items():
    assert list(prefetched(range(50), depth=2)) == list(range(50))


def test_an_error_is_raised_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_breaking_early_stops_the_thread():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    gen = prefetched(items(), depth=2)
    assert next(gen) == 0
    gen.close()
    time.sleep(0.3)
    n = len(produced)
    time.sleep(0.2)
    assert len(produced) == n < 10
    assert not any(t.name == "affectlens-decode" and t.is_alive() for t in threading.enumerate())


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        list(prefetched([1], depth=0))


def test_a_file_gives_the_same_frames_as_reading_it_directly():
    clip = need(VIDEOS / "single_face.mp4")
    with VideoSource(clip, end_s=1.0) as a:
        direct = [(f.index, f.timestamp_ms, f.image.sum()) for f in a]
    with VideoSource(clip, end_s=1.0) as b:
        ahead = [(f.index, f.timestamp_ms, f.image.sum()) for f in source_frames(b)]
    assert direct == ahead and len(direct) > 10
