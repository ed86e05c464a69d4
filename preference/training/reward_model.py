"""A video reward model: frozen CLIP features of sampled frames and the prompt, a small trained head with one
output per rubric dimension plus an overall one, fitted with Bradley-Terry with ties (Rao-Kupper). No Django.

Features (`video_features`, computed once per video and cached): the frames CLIP scores use
(`metrics.video.clip_score.evenly_spaced_indices`, the scorer's `num_frames`), embedded by the same open_clip
scorer as the CLIP score (`ClipScorer`: the multilingual default of `load_clip_scorer`, or any open_clip
model passed in), L2-normalised, then pooled over time into one vector of 4 * D:
`[mean_t e_t, mean_t |e_{t+1} - e_t|, c, (mean_t e_t) * c]` with `e_t` the frame embeddings and `c` the
prompt's text embedding (the second block is how much the picture changes between sampled frames, the
last one how the picture matches the prompt).

Head (`RewardHead`): the features standardised with the training set's mean and spread, then
Linear(4D, hidden) - GELU - Linear(hidden, 5): one score per rubric dimension (`HEADS[:4]`, the order of
`preference.pairs.DIMENSIONS`) and an overall one (`HEADS[4]`).

Loss, Rao-Kupper (1967) per head k, with scores s_i, s_j and a learned tie parameter eta_k = log theta_k >= 0:
    P(i beats j) = pi_i / (pi_i + theta pi_j) = sigmoid(s_i - s_j - eta)
    P(tie)       = (theta^2 - 1) pi_i pi_j / ((pi_i + theta pi_j)(pi_j + theta pi_i))
                 = 1 - P(i beats j) - P(j beats i)
with pi = exp(s). The loss is the mean negative log-likelihood over all comparisons. A comparison is
- a pairwise judgment (export `pairs`/`dpo` records: chosen beats rejected, label 0.5 a tie) on the overall
  head, and
- two videos of one prompt with Metric-2 scores on a rubric dimension, on that dimension's head: the higher
  mean score wins; means within `score_tie_margin` (default 0: equal) are a tie.

Evaluation (`evaluate`) on the validation split (by prompt, as the export splits), per head, side by side
for the reward model, the CLIP score alone, the motion score alone (Motion_Mean of `metrics.video.motion`)
and chance:
- accuracy without ties: on the decided comparisons, the share where the higher score is the winner
  (equal scores count half); chance is 0.5.
- accuracy with ties: a comparison is predicted a tie when |s_i - s_j| <= tau, and tau is the value that
  maximises this 3-way accuracy on the validation comparisons themselves (the tie calibration of Deutsch
  et al., 2023, so it is an optimistic figure, the same way for every method); chance is 1/3 (guessing one
  of three outcomes uniformly).
Scores are standardised on the validation set (each head's mean 0 and standard deviation 1 over the
validation videos; `RewardModel.score_mean`/`score_std` keep them), so a score and the tie threshold read
the same across runs.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.video.clip_score import ClipScorer, evenly_spaced_indices, load_clip_scorer
from preference.pairs import DIMENSIONS

HEADS: tuple[str, ...] = (*DIMENSIONS, "overall")
OVERALL = len(DIMENSIONS)
MIN_ETA = 1e-4  # theta > 1, so a tie keeps a positive probability
WEIGHTS_NAME = "reward_head.safetensors"
CONFIG_NAME = "reward_head.json"


# --------------------------------------------------------------------------------------------- features


def pool_frame_features(frame_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
    """(N, D) normalised frame embeddings and (D,) text embedding -> (4 D,) pooled features."""
    if frame_embeddings.ndim != 2 or text_embedding.shape != frame_embeddings.shape[1:]:
        raise ValueError(
            f"frame embeddings (N, D) and a text embedding (D,) expected, got {tuple(frame_embeddings.shape)} "
            f"and {tuple(text_embedding.shape)}"
        )
    mean = frame_embeddings.mean(dim=0)
    if frame_embeddings.shape[0] > 1:
        change = (frame_embeddings[1:] - frame_embeddings[:-1]).abs().mean(dim=0)
    else:
        change = torch.zeros_like(mean)
    return torch.cat([mean, change, text_embedding, mean * text_embedding]).float()


@torch.no_grad()
def video_features(
    scorer: ClipScorer, videos: Sequence[torch.Tensor | np.ndarray], prompts: Sequence[str]
) -> torch.Tensor:
    """(B, 4 D) features of (T, H, W, 3) uint8 videos with their prompts, on the CPU in float32."""
    if len(videos) != len(prompts):
        raise ValueError(f"{len(videos)} videos but {len(prompts)} prompts")
    distinct = list(dict.fromkeys(prompts))
    texts = scorer.text_embeddings(distinct).cpu() if distinct else torch.zeros(0)
    row = {prompt: index for index, prompt in enumerate(distinct)}
    pooled = []
    for video, prompt in zip(videos, prompts, strict=True):
        frames = torch.as_tensor(video)
        sampled = frames[torch.as_tensor(evenly_spaced_indices(frames.shape[0], scorer.num_frames))]
        pooled.append(pool_frame_features(scorer.image_embeddings(sampled).cpu(), texts[row[prompt]]))
    return torch.stack(pooled) if pooled else torch.zeros(0)


# ---------------------------------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Comparison:
    """Two videos (ids), the outcome for the first (1 win, 0.5 tie, 0 loss) and the head it trains."""

    first: str
    second: str
    outcome: float
    head: int

    def __post_init__(self) -> None:
        if self.outcome not in (0.0, 0.5, 1.0):
            raise ValueError(f"an outcome is 1, 0.5 or 0, got {self.outcome}")
        if not 0 <= self.head < len(HEADS):
            raise ValueError(f"head must be in 0..{len(HEADS) - 1}, got {self.head}")


def comparisons_from_pairs(records: Sequence[Mapping[str, Any]]) -> list[Comparison]:
    """Overall-head comparisons from export records with `chosen`, `rejected` (video ids) and `label`."""
    comparisons = []
    for record in records:
        label = float(record["label"])
        if label not in (1.0, 0.5):
            raise ValueError(f"a pair's label is 1.0 or 0.5, got {label}")
        comparisons.append(Comparison(str(record["chosen"]), str(record["rejected"]), label, OVERALL))
    return comparisons


def comparisons_from_scores(
    scores: Sequence[Mapping[str, Any]], *, score_tie_margin: float = 0.0
) -> list[Comparison]:
    """Per-dimension comparisons between every two videos of a prompt, from rows with `video`, `prompt`
    and `<dimension>_mean` (the export's `scores` records, with the video and prompt given as ids)."""
    by_prompt: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in scores:
        by_prompt[str(row["prompt"])].append(row)
    comparisons = []
    for prompt in sorted(by_prompt):
        rows = sorted(by_prompt[prompt], key=lambda r: str(r["video"]))
        for i, first in enumerate(rows):
            for second in rows[i + 1 :]:
                for head, dimension in enumerate(DIMENSIONS):
                    a, b = first.get(f"{dimension}_mean"), second.get(f"{dimension}_mean")
                    if a is None or b is None:
                        continue
                    difference = float(a) - float(b)
                    outcome = 0.5 if abs(difference) <= score_tie_margin else float(difference > 0)
                    comparisons.append(Comparison(str(first["video"]), str(second["video"]), outcome, head))
    return comparisons


# ------------------------------------------------------------------------------------------ likelihood


def rao_kupper_log_likelihood(
    first: torch.Tensor, second: torch.Tensor, outcome: torch.Tensor, eta: torch.Tensor
) -> torch.Tensor:
    """Log-probability of each outcome (1 first wins, 0.5 tie, 0 second wins) under Rao-Kupper with
    log-strengths `first`, `second` and eta = log theta > 0 (all broadcast to one shape)."""
    eta = eta.clamp(min=MIN_ETA)
    difference = first - second
    first_wins = F.logsigmoid(difference - eta)
    second_wins = F.logsigmoid(-difference - eta)
    # log P(tie) = log(theta^2 - 1) + s_i + s_j - log(pi_i + theta pi_j) - log(pi_j + theta pi_i)
    tie = (
        2 * eta
        + torch.log1p(-torch.exp(-2 * eta))
        + first
        + second
        - torch.logaddexp(first, eta + second)
        - torch.logaddexp(second, eta + first)
    )
    return torch.where(outcome == 1.0, first_wins, torch.where(outcome == 0.0, second_wins, tie))


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class RewardConfig:
    hidden: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    epochs: int = 300
    batch_size: int = 4096  # comparisons per step; features are cached, so this is cheap
    initial_eta: float = 0.5
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RewardHead(nn.Module):
    """Standardised features -> one score per head; `eta` holds each head's Rao-Kupper tie parameter."""

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    score_mean: torch.Tensor
    score_std: torch.Tensor

    def __init__(self, feature_dim: int, hidden: int = 64, initial_eta: float = 0.5) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.hidden = hidden
        self.register_buffer("feature_mean", torch.zeros(feature_dim))
        self.register_buffer("feature_std", torch.ones(feature_dim))
        self.register_buffer("score_mean", torch.zeros(len(HEADS)))
        self.register_buffer("score_std", torch.ones(len(HEADS)))
        self.net = nn.Sequential(nn.Linear(feature_dim, hidden), nn.GELU(), nn.Linear(hidden, len(HEADS)))
        raw = math.log(math.expm1(initial_eta))  # softplus^-1
        self.raw_eta = nn.Parameter(torch.full((len(HEADS),), raw))

    @property
    def eta(self) -> torch.Tensor:
        return F.softplus(self.raw_eta) + MIN_ETA

    def raw_scores(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 5) log-strengths, before the validation standardisation (what the likelihood uses)."""
        mean, std = self.feature_mean, self.feature_std
        return self.net((features.float() - mean) / std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 5) scores, standardised on the validation set."""
        return (self.raw_scores(features) - self.score_mean) / self.score_std


def _index(comparisons: Sequence[Comparison], row_of: Mapping[str, int]) -> tuple[torch.Tensor, ...]:
    missing = sorted(
        {c.first for c in comparisons if c.first not in row_of}
        | {c.second for c in comparisons if c.second not in row_of}
    )
    if missing:
        raise KeyError(f"no features for videos {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return (
        torch.tensor([row_of[c.first] for c in comparisons]),
        torch.tensor([row_of[c.second] for c in comparisons]),
        torch.tensor([c.outcome for c in comparisons]),
        torch.tensor([c.head for c in comparisons]),
    )


def comparison_loss(
    head: RewardHead, features: torch.Tensor, row_of: Mapping[str, int], comparisons: Sequence[Comparison]
) -> torch.Tensor:
    """Mean Rao-Kupper negative log-likelihood of the comparisons (features: one row per video id)."""
    first, second, outcome, which = _index(comparisons, row_of)
    scores = head.raw_scores(features)
    columns = which.unsqueeze(1)
    s_first = scores[first].gather(1, columns).squeeze(1)
    s_second = scores[second].gather(1, columns).squeeze(1)
    return -rao_kupper_log_likelihood(s_first, s_second, outcome, head.eta[which]).mean()


def train_reward_head(
    features: torch.Tensor,
    video_ids: Sequence[str],
    comparisons: Sequence[Comparison],
    config: RewardConfig | None = None,
) -> RewardHead:
    """Fit a head on cached features (one row per video id) to the training comparisons."""
    config = config or RewardConfig()
    if not comparisons:
        raise ValueError("no training comparisons")
    row_of = {video: row for row, video in enumerate(video_ids)}
    features = features.float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        head = RewardHead(features.shape[1], config.hidden, config.initial_eta)
        order_generator = torch.Generator().manual_seed(config.seed)
    used = sorted(
        {row_of[c.first] for c in comparisons if c.first in row_of}
        | {row_of[c.second] for c in comparisons if c.second in row_of}
    )
    train_rows = features[used] if used else features
    head.feature_mean.copy_(train_rows.mean(dim=0))
    head.feature_std.copy_(train_rows.std(dim=0, unbiased=False).clamp(min=1e-6))
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    head.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(comparisons), generator=order_generator).tolist()
        for start in range(0, len(order), config.batch_size):
            batch = [comparisons[i] for i in order[start : start + config.batch_size]]
            loss = comparison_loss(head, features, row_of, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return head.eval()


@torch.no_grad()
def standardise_on(head: RewardHead, validation_features: torch.Tensor) -> RewardHead:
    """Set each head's score mean and standard deviation to those over the validation videos."""
    raw = head.raw_scores(validation_features)
    head.score_mean.copy_(raw.mean(dim=0))
    head.score_std.copy_(raw.std(dim=0, unbiased=False).clamp(min=1e-6))
    return head


def save_reward_head(head: RewardHead, folder: str | Path, *, extra: Mapping[str, Any] | None = None) -> Path:
    """The head's weights (safetensors) and its shape and settings (json) in `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, folder / WEIGHTS_NAME)
    description = {"feature_dim": head.feature_dim, "hidden": head.hidden, "heads": list(HEADS)}
    (folder / CONFIG_NAME).write_text(json.dumps(description | dict(extra or {}), indent=2, sort_keys=True))
    return folder


def load_reward_head(folder: str | Path) -> RewardHead:
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_NAME} and {WEIGHTS_NAME}: not a saved reward head")
    description = json.loads((folder / CONFIG_NAME).read_text())
    if list(description.get("heads", [])) != list(HEADS):
        raise ValueError(f"{folder} was trained for heads {description.get('heads')}, not {list(HEADS)}")
    head = RewardHead(int(description["feature_dim"]), int(description["hidden"]))
    head.load_state_dict(load_file(folder / WEIGHTS_NAME))
    return head.eval()


@dataclass
class FittedRewardModel:
    head: RewardHead
    report: dict[str, dict[str, dict[str, float]]]  # `evaluate`'s table on the validation comparisons


def fit_reward_model(
    features: torch.Tensor,
    video_ids: Sequence[str],
    train: Sequence[Comparison],
    validation: Sequence[Comparison],
    *,
    baselines: Mapping[str, Mapping[str, float]] | None = None,
    config: RewardConfig | None = None,
) -> FittedRewardModel:
    """The whole procedure: fit the head on the training comparisons, standardise its scores on the
    videos of the validation comparisons, and evaluate it beside the baselines ({name: {video id: score}},
    e.g. CLIP score and motion score, standardised on the same videos) and chance on the validation
    comparisons."""
    head = train_reward_head(features, video_ids, train, config)
    row_of = {video: row for row, video in enumerate(video_ids)}
    validation_videos = sorted({c.first for c in validation} | {c.second for c in validation})
    if validation_videos:
        standardise_on(head, features[[row_of[video] for video in validation_videos]])
    methods: dict[str, Mapping[str, Sequence[float] | float]] = {
        "reward_model": head_scores(head, features, video_ids)
    }
    methods |= {
        name: standardise_baseline(scores, validation_videos) for name, scores in (baselines or {}).items()
    }
    return FittedRewardModel(head=head, report=evaluate(methods, validation))


def standardise_baseline(scores: Mapping[str, float], videos: Sequence[str]) -> dict[str, float]:
    """A one-number-per-video score (CLIP, motion) standardised like the reward model's: mean 0 and
    standard deviation 1 over `videos` (the validation videos), so tie thresholds read alike."""
    values = np.array([float(scores[video]) for video in videos], dtype=np.float64)
    if len(values) == 0:
        return {video: float(value) for video, value in scores.items()}
    mean, std = float(values.mean()), max(float(values.std()), 1e-6)
    return {video: (float(value) - mean) / std for video, value in scores.items()}


class RewardScorer:
    """A CLIP scorer and a trained head: scores (frames, prompt) pairs, one standardised value per head."""

    def __init__(self, clip: ClipScorer, head: RewardHead) -> None:
        self.clip = clip
        self.head = head.eval()

    @torch.no_grad()
    def score_batch(
        self, videos: Sequence[torch.Tensor | np.ndarray], prompts: Sequence[str]
    ) -> list[dict[str, float]]:
        if not videos:
            return []
        scores = self.head(video_features(self.clip, videos, prompts))
        return [dict(zip(HEADS, row.tolist(), strict=True)) for row in scores]


# ----------------------------------------------------------------------------------------- evaluation


def pairwise_accuracy(
    first: np.ndarray | Sequence[float],
    second: np.ndarray | Sequence[float],
    outcome: np.ndarray | Sequence[float],
    *,
    tie_threshold: float | None = None,
) -> float:
    """Without a threshold: on the decided comparisons, the share the higher score gets right (equal
    scores count half). With one: 3-way accuracy, predicting a tie when |first - second| <= threshold."""
    a, b, y = (np.asarray(v, dtype=np.float64) for v in (first, second, outcome))
    difference = a - b
    if tie_threshold is None:
        decided = y != 0.5
        if not decided.any():
            return math.nan
        d, wins = difference[decided], y[decided] == 1.0
        right = np.where(d == 0, 0.5, ((d > 0) == wins).astype(np.float64))
        return float(right.mean())
    if len(y) == 0:
        return math.nan
    predicted = np.where(np.abs(difference) <= tie_threshold, 0.5, (difference > 0).astype(np.float64))
    return float((predicted == y).mean())


def best_tie_threshold(
    first: np.ndarray | Sequence[float],
    second: np.ndarray | Sequence[float],
    outcome: np.ndarray | Sequence[float],
) -> tuple[float, float]:
    """(threshold, accuracy) maximising 3-way accuracy; candidates are 0 and every |difference| seen
    (the smallest threshold wins among equals)."""
    difference = np.abs(np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64))
    candidates = np.unique(np.concatenate([[0.0], difference]))
    best = (0.0, -1.0)
    for threshold in candidates:
        accuracy = pairwise_accuracy(first, second, outcome, tie_threshold=float(threshold))
        if accuracy > best[1]:
            best = (float(threshold), accuracy)
    return best


def evaluate(
    scores_by_method: Mapping[str, Mapping[str, Sequence[float] | float]],
    comparisons: Sequence[Comparison],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per head and method: accuracy without ties, with ties (and its threshold), and the counts.

    `scores_by_method` maps a method name to {video id: score}, where a score is one number per head
    (a sequence of len(HEADS), e.g. the reward model's) or one number for every head (CLIP or motion
    score). Chance is added as the method "chance". Heads without comparisons are left out.
    """
    results: dict[str, dict[str, dict[str, float]]] = {}
    for head_index, head_name in enumerate(HEADS):
        chosen = [c for c in comparisons if c.head == head_index]
        if not chosen:
            continue
        outcome = np.array([c.outcome for c in chosen])
        ties = int((outcome == 0.5).sum())
        row: dict[str, dict[str, float]] = {}
        for method, scores in scores_by_method.items():
            first = np.array([_score_of(scores[c.first], head_index) for c in chosen])
            second = np.array([_score_of(scores[c.second], head_index) for c in chosen])
            threshold, with_ties = best_tie_threshold(first, second, outcome)
            row[method] = {
                "accuracy": pairwise_accuracy(first, second, outcome),
                "accuracy_with_ties": with_ties,
                "tie_threshold": threshold,
            }
        row["chance"] = {"accuracy": 0.5, "accuracy_with_ties": 1 / 3, "tie_threshold": math.nan}
        row["counts"] = {"comparisons": float(len(chosen)), "ties": float(ties)}
        results[head_name] = row
    return results


def _score_of(value: Sequence[float] | float, head: int) -> float:
    if isinstance(value, int | float):
        return float(value)
    return float(value[head])


def head_scores(head: RewardHead, features: torch.Tensor, video_ids: Sequence[str]) -> dict[str, list[float]]:
    """{video id: standardised scores per head} for evaluation."""
    with torch.no_grad():
        scores = head(features)
    return {video: row.tolist() for video, row in zip(video_ids, scores, strict=True)}


def load_reward_scorer(
    head_folder: str | Path, clip: ClipScorer | None = None, **clip_options: Any
) -> RewardScorer:
    """A saved head with its CLIP scorer: `clip` as given, or built by `load_clip_scorer(**clip_options)`
    (the CLIP score's loader and multilingual default; pass `checkpoint_path`/`text_model_dir` offline).
    The CLIP model must be the one the head's features were computed with."""
    head = load_reward_head(head_folder)
    return RewardScorer(clip if clip is not None else load_clip_scorer(**clip_options), head)
