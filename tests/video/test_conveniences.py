"""Python conveniences of video runs: imports from the top package, DataFrames, a progress bar."""

from __future__ import annotations

import pytest

from conftest import VIDEOS, need


def test_video_analyzer_importable_from_the_top_package():
    import affectlens
    from affectlens import RunOptions, VideoAnalyzer, VideoOptions, run_video
    from affectlens.video import VideoAnalyzer as V2
    from affectlens.video.session import run_video as r2

    assert VideoAnalyzer is V2 and run_video is r2 and VideoOptions and RunOptions
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        affectlens.Nope  # noqa: B018


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from affectlens import EmotionRecognizer, RecognizerOptions
    from affectlens.video import RunOptions, VideoAnalyzer, VideoOptions, run_video

    va = VideoAnalyzer(VideoOptions(), recognizer=EmotionRecognizer(RecognizerOptions(model="fer-vgg48s")))
    frames = []
    result = run_video(need(VIDEOS / "single_face.mp4"), tmp_path_factory.mktemp("conv"), analyzer=va,
                       run=RunOptions(fps=5), progress=lambda n, ts, total: frames.append((n, ts, total)))
    return result, frames


def test_run_frames_and_intervals_as_dataframes(run):
    pd = pytest.importorskip("pandas")
    result, _ = run
    df = result.to_pandas()
    assert isinstance(df, pd.DataFrame) and len(df) >= result.frames_analysed - 2
    assert {"timestamp_ms", "track_id", "emotion", "emotion_raw", "happy", "raw_happy", "engagement"} <= set(df)
    iv = result.to_pandas("intervals")
    assert {"track_id", "start_ms", "end_ms", "dominant"} <= set(iv) and len(iv) >= 1
    with pytest.raises(ValueError, match="'frames' or 'intervals'"):
        result.to_pandas("tracks")


def test_frames_to_pandas_matches_frames_csv(run):
    pytest.importorskip("pandas")
    from affectlens.video import frames_to_pandas
    from affectlens.video.store import read_frames

    result, _ = run
    frames = read_frames(result.files["frames_jsonl"])
    df = frames_to_pandas(frames)
    assert df["emotion"].tolist() == result.to_pandas()["emotion"].tolist()


def test_progress_callable_sees_every_frame_and_the_total(run):
    result, calls = run
    assert [c[0] for c in calls] == list(range(1, result.frames_analysed + 1))
    assert calls[-1][2] == pytest.approx(2400, abs=100)          # 2.4 s clip


def test_a_resumed_runs_bar_starts_part_way_and_counts_its_own_speed():
    import io
    import re
    import time

    from affectlens.video.progress import VideoProgress

    out = io.StringIO()
    with VideoProgress(file=out) as bar:
        bar(1, 60_000.0, 120_000.0)   # resumed at 60 s of a 120 s video
        time.sleep(0.5)
        bar(2, 61_000.0, 120_000.0)   # 1 s of video in about 0.5 s
    text = out.getvalue()
    speeds = [float(x) for x in re.findall(r"([0-9.]+)× real time", text)]
    assert "61.0/120.0 s of video" in text and speeds and speeds[-1] < 4  # not 61 s / 0.5 s = 122×


def test_progress_true_draws_a_bar_in_seconds_of_video(tmp_path, capfd):
    from affectlens import EmotionRecognizer, RecognizerOptions
    from affectlens.video import RunOptions, VideoAnalyzer, run_video

    va = VideoAnalyzer(recognizer=EmotionRecognizer(RecognizerOptions(model="fer-vgg48s")))
    run_video(need(VIDEOS / "single_face.mp4"), tmp_path, analyzer=va, run=RunOptions(fps=2, end_s=1.0),
              progress=True)
    err = capfd.readouterr().err
    assert "s of video" in err and "× real time" in err and "s/s" not in err
