"""Synthetic demo clips: determinism, the defect each kind shows, and the files they are written to."""

from __future__ import annotations

from collections import Counter

import av
import numpy as np
import pytest

from generation.demo_clips import CLIP_KINDS, demo_plan, render_clip, write_clip

SMALL = {"width": 96, "height": 64, "fps": 12, "seconds": 2}


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between each pair of consecutive frames."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))


@pytest.mark.parametrize("kind", CLIP_KINDS)
def test_clip_shape_and_determinism(kind):
    first = render_clip(kind, seed=7, **SMALL)
    again = render_clip(kind, seed=7, **SMALL)

    assert first.shape == (24, 64, 96, 3)
    assert first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, render_clip(kind, seed=8, **SMALL))


def test_default_size_matches_the_demo_loader():
    assert render_clip("smooth", seed=0).shape == (48, 192, 320, 3)


def test_seed_sets_the_scene_and_kind_only_the_defect():
    smooth = render_clip("smooth", seed=3, **SMALL)
    frozen = render_clip("frozen", seed=3, **SMALL)

    assert np.array_equal(smooth[0], frozen[0])


def test_smooth_clip_moves_every_frame_at_a_steady_rate():
    differences = frame_differences(render_clip("smooth", seed=1, **SMALL))

    assert differences.min() > 0
    assert differences.max() < 2.5 * np.median(differences)


def test_frozen_clip_has_a_stretch_of_identical_frames():
    frames = render_clip("frozen", seed=2, **SMALL)

    identical = [np.array_equal(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    longest_run = max(len(run) for run in "".join("x" if same else " " for same in identical).split(" "))
    assert longest_run >= len(frames) // 4
    assert not all(identical)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dropped_frames_jump_further_than_smooth_motion(seed):
    smooth = frame_differences(render_clip("smooth", seed=seed, **SMALL))
    dropped = frame_differences(render_clip("dropped_frames", seed=seed, **SMALL))

    assert dropped.max() > 2 * smooth.max()
    assert dropped.mean() > smooth.mean()


def test_jitter_is_less_steady_than_smooth_motion():
    smooth = frame_differences(render_clip("smooth", seed=4, **SMALL))
    jitter = frame_differences(render_clip("jitter", seed=4, **SMALL))

    assert jitter.std() > 2 * smooth.std()


def test_clips_are_labelled_demo():
    """The label's white text sits in the top-left corner of every frame."""
    frames = render_clip("smooth", seed=5, **SMALL)

    corner = frames[:, :20, :40]
    assert (corner.min(axis=3) > 230).any(axis=(1, 2)).all()


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown clip kind"):
        render_clip("melting", seed=0)


def test_written_clip_decodes_to_the_same_frames(tmp_path):
    frames = render_clip("dropped_frames", seed=9, **SMALL)
    path = tmp_path / "clip.mp4"

    write_clip(frames, path, fps=12)

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert (stream.codec_context.name, stream.average_rate) == ("h264", 12)
    assert len(decoded) == len(frames)
    assert decoded[0].shape == frames[0].shape
    assert np.abs(decoded[5].astype(np.int16) - frames[5]).mean() < 4


def test_write_clip_refuses_odd_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_clip(np.zeros((4, 15, 16, 3), dtype=np.uint8), tmp_path / "odd.mp4", fps=12)


def test_demo_plan_covers_every_combination_and_model_a_is_cleaner():
    prompts = [f"prompt {i}" for i in range(8)]

    plan = demo_plan(prompts, models=("Demo model A", "Demo model B"), seeds=(0, 1))

    assert len(plan) == 8 * 2 * 2
    assert {(index, model, seed) for index, model, seed, _ in plan} == {
        (index, model, seed)
        for index in range(8)
        for model in ("Demo model A", "Demo model B")
        for seed in (0, 1)
    }
    assert {kind for *_, kind in plan} <= set(CLIP_KINDS)
    kinds_a = Counter(kind for _, model, _, kind in plan if model == "Demo model A")
    kinds_b = Counter(kind for _, model, _, kind in plan if model == "Demo model B")
    assert kinds_a["smooth"] >= 12
    assert kinds_b["smooth"] <= 4
    assert {"dropped_frames", "frozen", "jitter"} <= set(kinds_b)
    assert demo_plan(prompts) == plan
