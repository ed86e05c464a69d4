"""On-policy pairs: best and worst of k seeds per prompt, kept when the reward gap exceeds the minimum."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from preference.training.on_policy import Candidate, score_candidate_files, score_candidates, select_pairs
from preference.training.reward_model import HEADS, RewardHead, RewardScorer

from .test_reward_model import tiny_clip_scorer


def _candidate(video: str, prompt: str, seed: int, overall: float) -> Candidate:
    return Candidate(video, prompt, seed, {name: 0.0 for name in HEADS} | {"overall": overall})


def test_best_and_worst_per_prompt_when_the_gap_exceeds_the_minimum():
    candidates = [
        _candidate("a1", "a", 1, 0.2),
        _candidate("a2", "a", 2, 1.5),
        _candidate("a3", "a", 3, -0.9),
        _candidate("b1", "b", 1, 0.1),
        _candidate("b2", "b", 2, 0.3),  # gap 0.2: too close
        _candidate("c1", "c", 1, 2.0),  # one video only
        _candidate("d1", "d", 7, 0.5),
        _candidate("d2", "d", 3, 0.5),
        _candidate("d3", "d", 5, -1.0),
    ]
    selection = select_pairs(candidates, min_gap=0.5, reward_model="rm-1")
    assert selection.prompts == 4 and selection.too_few_videos == 1 and selection.gap_too_small == 1
    records = {record["prompt"]: record for record in selection.records}
    assert set(records) == {"a", "d"}
    assert (records["a"]["chosen"], records["a"]["rejected"]) == ("a2", "a3")
    assert records["a"]["gap"] == pytest.approx(2.4) and records["a"]["candidates"] == 3
    assert records["d"]["chosen"] == "d2"  # equal scores: the lower seed
    for record in selection.records:
        assert record["label_source"] == "reward_model" and record["reward_model"] == "rm-1"
        assert record["label"] == 1.0 and record["record_id"].startswith("rm-")
    assert select_pairs(candidates, min_gap=2.4, reward_model="rm-1").records == []  # must exceed


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="head"):
        select_pairs([], min_gap=0.1, reward_model="rm", head="beauty")
    with pytest.raises(ValueError, match="min_gap"):
        select_pairs([], min_gap=-1.0, reward_model="rm")


def test_videos_are_scored_by_the_reward_model_then_selected():
    clip = tiny_clip_scorer()
    torch.manual_seed(0)
    head = RewardHead(4 * 16, hidden=8)
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8) for _ in range(4)]
    candidates = score_candidates(
        RewardScorer(clip, head),
        videos,
        video_ids=["p1", "p2", "q1", "q2"],
        prompts=["p", "p", "q", "q"],
        seeds=[0, 1, 0, 1],
    )
    assert [c.video_id for c in candidates] == ["p1", "p2", "q1", "q2"]
    assert all(set(c.scores) == set(HEADS) for c in candidates)
    selection = select_pairs(candidates, min_gap=0.0, reward_model="rm")
    p_best = max(candidates[:2], key=lambda c: c.scores["overall"])
    assert selection.records[0]["chosen"] == p_best.video_id


def test_files_are_scored_as_their_whole_decoded_videos(tmp_path):
    from metrics.video.decode import decode_video, write_video

    clip = tiny_clip_scorer()
    torch.manual_seed(0)
    scorer = RewardScorer(clip, RewardHead(4 * 16, hidden=8))
    rng = np.random.default_rng(1)
    paths = []
    for index, frames in enumerate([30, 5]):  # more and fewer frames than the 8 CLIP looks at
        paths.append(tmp_path / f"v{index}.mp4")
        write_video(paths[-1], rng.integers(0, 256, size=(frames, 32, 32, 3), dtype=np.uint8))
    options = {"video_ids": ["a", "b"], "prompts": ["p", "q"], "seeds": [0, 1]}
    from_files = list(score_candidate_files(scorer, paths, **options))
    whole = score_candidates(scorer, [decode_video(path) for path in paths], **options)
    assert [c.video_id for c in from_files] == ["a", "b"]
    for streamed, expected in zip(from_files, whole, strict=True):
        assert streamed.scores == pytest.approx(expected.scores, abs=1e-6)
    with pytest.raises(ValueError, match="same length"):
        list(score_candidate_files(scorer, paths[:1], **options))
