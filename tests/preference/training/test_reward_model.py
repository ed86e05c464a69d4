"""The reward model: Rao-Kupper against hand computation, comparisons from judgments and rubric scores,
the accuracy figures, and a tiny random open_clip model under a head that learns a synthetic preference
(smooth videos over jittery ones) to at least 90% held-out accuracy, beside the CLIP and motion scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metrics.video.clip_score import ClipScorer
from metrics.video.motion import motion_score
from preference.pairs import split_of
from preference.training.reward_model import (
    HEADS,
    OVERALL,
    Comparison,
    RewardConfig,
    best_tie_threshold,
    comparison_loss,
    comparisons_from_pairs,
    comparisons_from_scores,
    fit_reward_model,
    load_reward_head,
    load_reward_scorer,
    pairwise_accuracy,
    rao_kupper_log_likelihood,
    save_reward_head,
    video_features,
)

TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def tiny_clip_scorer() -> ClipScorer:
    open_clip = pytest.importorskip("open_clip")
    from open_clip.tokenizer import SimpleTokenizer

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    preprocess = {"size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "interpolation": "bicubic"}
    return ClipScorer(model, SimpleTokenizer(context_length=16), preprocess_cfg=preprocess, num_frames=8)


def test_rao_kupper_matches_a_hand_computation():
    s_i, s_j, theta = 0.7, -0.2, 1.8
    pi_i, pi_j = math.exp(s_i), math.exp(s_j)
    win = pi_i / (pi_i + theta * pi_j)
    loss = pi_j / (pi_j + theta * pi_i)
    tie = (theta**2 - 1) * pi_i * pi_j / ((pi_i + theta * pi_j) * (pi_j + theta * pi_i))
    assert win + loss + tie == pytest.approx(1.0)
    got = rao_kupper_log_likelihood(
        torch.tensor([s_i] * 3, dtype=torch.float64),
        torch.tensor([s_j] * 3, dtype=torch.float64),
        torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64),
        torch.tensor(math.log(theta), dtype=torch.float64),
    )
    assert got.exp().tolist() == pytest.approx([win, tie, loss], rel=1e-12)


def test_comparisons_from_judgments_and_rubric_scores():
    pairs = comparisons_from_pairs(
        [{"chosen": "a", "rejected": "b", "label": 1.0}, {"chosen": "c", "rejected": "a", "label": 0.5}]
    )
    assert pairs == [Comparison("a", "b", 1.0, OVERALL), Comparison("c", "a", 0.5, OVERALL)]
    rows = [
        {"video": "v1", "prompt": "p", "instruction_following_mean": 4.0, "motion_smoothness_mean": 2.0},
        {"video": "v2", "prompt": "p", "instruction_following_mean": 3.0, "motion_smoothness_mean": 2.0},
        {"video": "v3", "prompt": "q", "instruction_following_mean": 1.0},
    ]
    assert comparisons_from_scores(rows) == [Comparison("v1", "v2", 1.0, 0), Comparison("v1", "v2", 0.5, 1)]
    assert comparisons_from_scores(rows, score_tie_margin=1.0)[0].outcome == 0.5


def test_pairwise_accuracy_with_and_without_ties():
    first, second = [2.0, 0.0, 1.0, 5.0], [1.0, 1.0, 1.05, 5.0]
    outcome = [1.0, 1.0, 0.5, 0.0]
    assert pairwise_accuracy(first, second, outcome) == pytest.approx((1 + 0 + 0.5) / 3)
    assert pairwise_accuracy(first, second, outcome, tie_threshold=0.1) == pytest.approx(2 / 4)
    threshold, accuracy = best_tie_threshold(first, second, outcome)
    assert threshold == pytest.approx(0.05) and accuracy == pytest.approx(2 / 4)


def _video(generator: np.random.Generator, *, smooth: bool) -> np.ndarray:
    """A drifting smooth pattern, or the same with strong per-frame noise (jitter)."""
    base = generator.uniform(0, 255, size=(4, 4, 3))
    image = np.kron(base, np.ones((12, 12, 1)))  # 48x48 blocks
    frames = [np.roll(image, shift=t, axis=1) for t in range(12)]
    video = np.stack(frames)
    if not smooth:
        video = video + generator.normal(0, 70, size=video.shape)
    return np.clip(video, 0, 255).astype(np.uint8)


def test_the_head_learns_a_synthetic_preference_on_held_out_prompts(tmp_path):
    scorer = tiny_clip_scorer()
    generator = np.random.default_rng(0)
    prompts = [f"a red ball number {i}" for i in range(48)]
    videos, prompt_of, ids = [], [], []
    pairs, score_rows = [], []
    for index, prompt in enumerate(prompts):
        smooth, jittery = _video(generator, smooth=True), _video(generator, smooth=False)
        first_smooth = index % 2 == 0  # the order varies, so a side never predicts the winner
        for name, video in (
            (("s", smooth), ("j", jittery)) if first_smooth else (("j", jittery), ("s", smooth))
        ):
            ids.append(f"{name}{index}")
            videos.append(video)
            prompt_of.append(prompt)
        pairs.append({"chosen": f"s{index}", "rejected": f"j{index}", "label": 1.0, "prompt": prompt})
        for name, smoothness in (("s", 4.0), ("j", 2.0)):
            score_rows.append(
                {"video": f"{name}{index}", "prompt": prompt, "motion_smoothness_mean": smoothness}
            )
    features = video_features(scorer, videos, prompt_of)
    assert features.shape == (len(videos), 4 * 16)

    split = {p: split_of(p, seed="rm", validation_fraction=0.35) for p in prompts}
    assert 8 <= sum(s == "validation" for s in split.values()) <= 24

    def comparisons_in(side):
        kept_pairs = [p for p in pairs if split[p["prompt"]] == side]
        kept_scores = [r for r in score_rows if split[r["prompt"]] == side]
        return comparisons_from_pairs(kept_pairs) + comparisons_from_scores(kept_scores)

    train, validation = comparisons_in("train"), comparisons_in("validation")
    clip = dict(zip(ids, scorer.score_batch(videos, prompt_of), strict=True))
    motion = {
        video: motion_score(frames, short_side=None).mean for video, frames in zip(ids, videos, strict=True)
    }
    fitted = fit_reward_model(
        features,
        ids,
        train,
        validation,
        baselines={"clip_score": clip, "motion_score": motion},
        config=RewardConfig(hidden=32, epochs=100, seed=0),
    )
    head, report = fitted.head, fitted.report
    row_of = {video: row for row, video in enumerate(ids)}
    validation_rows = [row_of[v] for v in ids if split[prompt_of[row_of[v]]] == "validation"]
    with torch.no_grad():
        standardised = head(features[validation_rows])
    assert standardised.mean(dim=0).abs().max() < 1e-4  # standardised on the validation videos
    assert (standardised.std(dim=0, unbiased=False) - 1).abs().max() < 1e-3
    assert set(report) == {"motion_smoothness", "overall"}
    for head_name in ("overall", "motion_smoothness"):
        assert report[head_name]["reward_model"]["accuracy"] >= 0.9, report
        assert report[head_name]["chance"]["accuracy"] == 0.5
        assert {"clip_score", "motion_score"} <= set(report[head_name])
    # the rubric's smoothness pairs trained their own head
    assert report["motion_smoothness"]["counts"]["comparisons"] == len(validation) / 2

    with torch.no_grad():
        assert float(comparison_loss(head, features, row_of, validation)) < math.log(2)

    folder = save_reward_head(head, tmp_path / "head")
    reloaded = load_reward_head(folder)
    torch.testing.assert_close(reloaded(features), head(features))
    scored = load_reward_scorer(folder, clip=scorer).score_batch(videos[:2], prompt_of[:2])
    assert list(scored[0]) == list(HEADS)
    with torch.no_grad():
        expected = float(head(features[:1])[0, OVERALL])
    assert scored[0]["overall"] == pytest.approx(expected, abs=1e-5)


def test_baselines_are_standardised_on_the_validation_videos_so_tie_thresholds_compare():
    from preference.training.reward_model import standardise_baseline

    validation = [Comparison("a", "b", 1.0, OVERALL), Comparison("c", "d", 0.5, OVERALL)]
    raw = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 2.2, "unseen": 50.0}
    standardised = standardise_baseline(raw, ["a", "b", "c", "d"])
    values = np.array([standardised[v] for v in "abcd"])
    assert abs(values.mean()) < 1e-12 and abs(values.std() - 1) < 1e-12
    assert standardised["unseen"] == pytest.approx((50.0 - 2.05) / np.std([3.0, 1.0, 2.0, 2.2]))
    # The same score in other units gives the same report, tie threshold included.
    features, ids = torch.randn(4, 8), ["a", "b", "c", "d"]
    config = RewardConfig(hidden=4, epochs=2)
    reports = [
        fit_reward_model(
            features, ids, validation, validation, baselines={"clip_score": scale}, config=config
        ).report["overall"]["clip_score"]
        for scale in (raw, {v: 1000 * s for v, s in raw.items()})
    ]
    assert reports[0] == pytest.approx(reports[1])
    assert reports[0]["tie_threshold"] == pytest.approx(0.2 / np.std([3.0, 1.0, 2.0, 2.2]))
