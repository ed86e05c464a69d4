"""On-policy preference pairs labelled by a reward model (no Django).

Once the human labels go stale (they judged an older checkpoint's videos), the checkpoint being tuned
generates k videos per prompt with different seeds, a trained reward model scores them, and per prompt:
- the best and the worst video by the chosen head's score (default `overall`) form a candidate pair
  (among equal scores the lower seed, then the lower video id, comes first, so the choice is stable);
- the pair is kept when best - worst exceeds `min_gap` (standardised units of the reward model, see
  `reward_model`), otherwise the prompt is left out as too close to call;
- prompts with fewer than two videos are left out.
Every kept record is marked `label_source = "reward_model"` with the reward model's id and both scores, so
an export and a Video-DPO run can tell machine labels from human ones. Records use the export's DPO fields
(prompt, chosen, rejected, label, record_id).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from preference.pairs import DECIDED_LABEL, pair_id

from .reward_model import HEADS, RewardScorer

REWARD_MODEL_LABEL = "reward_model"


@dataclass(frozen=True)
class Candidate:
    """One generated video of a prompt with its seed and its reward-model scores per head."""

    video_id: str
    prompt: str
    seed: int
    scores: dict[str, float]


@dataclass
class Selection:
    records: list[dict[str, Any]] = field(default_factory=list)
    prompts: int = 0
    too_few_videos: int = 0  # prompts with fewer than two videos
    gap_too_small: int = 0  # prompts whose best and worst were within min_gap


def score_candidates(
    scorer: RewardScorer,
    videos: Sequence[Any],
    *,
    video_ids: Sequence[str],
    prompts: Sequence[str],
    seeds: Sequence[int],
) -> list[Candidate]:
    """Score generated videos ((T, H, W, 3) uint8 each) with a reward model."""
    if not len(videos) == len(video_ids) == len(prompts) == len(seeds):
        raise ValueError("videos, video_ids, prompts and seeds must have the same length")
    scores = scorer.score_batch(videos, prompts)
    return [
        Candidate(video_id=v, prompt=p, seed=int(s), scores=row)
        for v, p, s, row in zip(video_ids, prompts, seeds, scores, strict=True)
    ]


def score_candidate_files(
    scorer: RewardScorer,
    paths: Sequence[Any],
    *,
    video_ids: Sequence[str],
    prompts: Sequence[str],
    seeds: Sequence[int],
) -> Iterator[Candidate]:
    """`score_candidates` of video files, yielded one by one; each file is decoded for the frames its CLIP
    features use only (`metrics.video.scoring.clip_frames`), so memory holds those frames, not videos."""
    from metrics.video.scoring import clip_frames

    if not len(paths) == len(video_ids) == len(prompts) == len(seeds):
        raise ValueError("paths, video_ids, prompts and seeds must have the same length")
    for path, video_id, prompt, seed in zip(paths, video_ids, prompts, seeds, strict=True):
        frames = clip_frames(path, scorer.clip.num_frames)
        yield from score_candidates(scorer, [frames], video_ids=[video_id], prompts=[prompt], seeds=[seed])


def select_pairs(
    candidates: Sequence[Candidate], *, min_gap: float, reward_model: str, head: str = "overall"
) -> Selection:
    """Best and worst video per prompt when their score gap exceeds `min_gap`; see the module docstring."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if not math.isfinite(min_gap) or min_gap < 0:
        raise ValueError(f"min_gap must be a number >= 0, got {min_gap}")
    by_prompt: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        if not math.isfinite(candidate.scores[head]):
            raise ValueError(f"video {candidate.video_id} has no finite {head} score")
        by_prompt[candidate.prompt].append(candidate)
    selection = Selection(prompts=len(by_prompt))
    for prompt in sorted(by_prompt):
        group = by_prompt[prompt]
        if len(group) < 2:
            selection.too_few_videos += 1
            continue
        ranked = sorted(group, key=lambda c: (-c.scores[head], c.seed, c.video_id))
        best, worst = ranked[0], ranked[-1]
        gap = best.scores[head] - worst.scores[head]
        if gap <= min_gap:
            selection.gap_too_small += 1
            continue
        selection.records.append(
            {
                "record_id": f"rm-{pair_id(best.video_id, worst.video_id)}",
                "prompt": prompt,
                "chosen": best.video_id,
                "rejected": worst.video_id,
                "label": DECIDED_LABEL,
                "label_source": REWARD_MODEL_LABEL,
                "reward_model": reward_model,
                "head": head,
                "chosen_seed": best.seed,
                "rejected_seed": worst.seed,
                "chosen_score": best.scores[head],
                "rejected_score": worst.scores[head],
                "gap": gap,
                "candidates": len(group),
            }
        )
    return selection
