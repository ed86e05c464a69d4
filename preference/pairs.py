"""Preference pairs from votes, and the split by prompt: plain functions over plain rows (no Django).

A vote is one annotator's answer on two videos of one prompt, as seen: the left video, the right video and
the choice (left, tie or right). Votes on the same two videos (in either order, from any campaign) make one
pair. The rule that turns a pair's votes into chosen/rejected, on one screen:

- `a` and `b` are the votes for each video, `t` the ties, `n = a + b + t`.
- A video is chosen when it has strictly more votes than the other and at least as many as the ties
  (2-1, 2-0-1, 2-0-2); otherwise the pair is a tie (1-1, 1-0-2, 1-1-1). This is the site's one majority
  rule, `metrics.stats.pairwise.majority`, the one the results and the quality page use.
- Agreement is the share of votes for the majority option: `max(a, b, t) / n` (2-1 gives 2/3).
- A tie is dropped, or kept with label 0.5 (its two videos in a fixed order); a decided pair has label 1.0.
- The minimum-agreement filter looks at the pair's agreement, in both granularities.
- Per judgment, every vote is its own record (its chosen side is the one that annotator picked); the
  record carries the whole pair's counts, oriented to its own chosen video, and the pair's agreement.

The split assigns whole prompts, by their text: a prompt is in validation when the hash of (split seed,
normalised prompt text), read as a number in [0, 1), is below the validation fraction. The text is
normalised by casefolding it and collapsing every run of whitespace to one space (leading and trailing
whitespace dropped), so the same prompt in two benchmarks, or spelt with other capitals or spacing, lands on
one side. Every record of a prompt follows its prompt.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from annotation.outcomes import PAIRED_CHOICES, preferred
from metrics.stats.pairwise import WinTieLoss, majority_of_counts

Choice = Literal["left", "tie", "right"]
TieHandling = Literal["drop", "label"]
Granularity = Literal["pair", "judgment"]
Split = Literal["train", "validation"]

CHOICES: tuple[str, ...] = PAIRED_CHOICES
TIE_HANDLING: tuple[str, ...] = ("drop", "label")
GRANULARITIES: tuple[str, ...] = ("pair", "judgment")
SPLITS: tuple[Split, ...] = ("train", "validation")
DIMENSIONS: tuple[str, ...] = (
    "instruction_following",
    "motion_smoothness",
    "physical_plausibility",
    "aesthetic_appeal",
)
DECIDED_LABEL = 1.0
TIE_LABEL = 0.5
ANNOTATOR_HASH_LENGTH = 16  # hex characters: 64 bits, ample to keep a few thousand annotators apart


class PairsError(ValueError):
    """Bad options or rows; the message is for the person who asked for the export."""


@dataclass(frozen=True)
class Vote:
    """One paired judgment, as the annotator saw it. Videos are stable ids (the videos' public ids)."""

    judgment_id: int
    campaign: str
    prompt_id: int
    left_video: str
    right_video: str
    choice: Choice
    annotator: str


@dataclass(frozen=True)
class PreferencePair:
    """One output record: a pair (votes aggregated) or one judgment. `votes_*` count the whole pair's
    votes, oriented to this record's chosen and rejected videos."""

    record_id: str
    pair_id: str
    prompt_id: int
    chosen: str
    rejected: str
    label: float
    votes_chosen: int
    votes_rejected: int
    votes_tie: int
    agreement: float
    annotators: tuple[str, ...]
    campaigns: tuple[str, ...]

    @property
    def votes_total(self) -> int:
        return self.votes_chosen + self.votes_rejected + self.votes_tie

    @property
    def is_tie(self) -> bool:
        return self.label == TIE_LABEL


@dataclass
class PairingCounts:
    """What the aggregation kept and left out (goes into the manifest)."""

    votes: int = 0
    pairs: int = 0
    tie_pairs: int = 0
    records: int = 0
    dropped_ties: int = 0
    below_min_agreement: int = 0


@dataclass(frozen=True)
class ScoreRow:
    """One annotator's four Metric-2 scores for one video."""

    video: str
    prompt_id: int
    annotator: str
    scores: tuple[int, int, int, int]  # in DIMENSIONS order


@dataclass(frozen=True)
class VideoScores:
    """Metric-2 scores of one video: the mean of each dimension over its `n` score rows, and each row."""

    video: str
    prompt_id: int
    n: int
    means: tuple[float, float, float, float]  # in DIMENSIONS order
    by_annotator: tuple[tuple[str, tuple[int, int, int, int]], ...]  # sorted by annotator, then scores


def hash_annotator(user_id: int, key: bytes, length: int = ANNOTATOR_HASH_LENGTH) -> str:
    """HMAC-SHA256 of the user id: the same person gets the same id in every export made with the same key,
    and nobody without the key can tell who it is."""
    return hmac.new(key, str(user_id).encode("ascii"), hashlib.sha256).hexdigest()[:length]


def _short_hash(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def pair_id(video_a: str, video_b: str) -> str:
    """A stable id for two videos, whatever their order."""
    first, second = sorted((video_a, video_b))
    return _short_hash("pair", first, second)


@dataclass(frozen=True)
class PairOutcome:
    """The verdict of a pair's votes: `chosen` is None for a tie."""

    chosen: str | None
    agreement: float


def decide(video_a: str, votes_a: int, video_b: str, votes_b: int, ties: int) -> PairOutcome:
    """The rule in the module docstring: who is chosen (None = tie) and the agreement."""
    total = votes_a + votes_b + ties
    if total <= 0 or min(votes_a, votes_b, ties) < 0:
        raise PairsError(
            f"a pair needs at least one vote and no negative counts; got {votes_a}-{votes_b}-{ties}"
        )
    agreement = max(votes_a, votes_b, ties) / total
    verdict = majority_of_counts(WinTieLoss(wins=votes_a, ties=ties, losses=votes_b))
    if verdict == "tie":
        return PairOutcome(None, agreement)
    return PairOutcome(video_a if verdict == "win" else video_b, agreement)


def check_options(*, min_agreement: float, ties: str, granularity: str) -> None:
    if not 0.0 <= min_agreement <= 1.0:
        raise PairsError(f"the minimum agreement must be between 0 and 1; got {min_agreement}")
    if ties not in TIE_HANDLING:
        raise PairsError(f"ties must be one of {', '.join(TIE_HANDLING)}; got {ties!r}")
    if granularity not in GRANULARITIES:
        raise PairsError(f"granularity must be one of {', '.join(GRANULARITIES)}; got {granularity!r}")


def _check_vote(vote: Vote) -> None:
    if vote.choice not in CHOICES:
        raise PairsError(f"judgment {vote.judgment_id}: unknown choice {vote.choice!r}")
    if vote.left_video == vote.right_video:
        raise PairsError(f"judgment {vote.judgment_id}: the same video is on both sides")


def build_pairs(
    votes: Iterable[Vote],
    *,
    min_agreement: float = 0.0,
    ties: TieHandling = "drop",
    granularity: Granularity = "pair",
) -> tuple[list[PreferencePair], PairingCounts]:
    """Chosen/rejected records from votes, sorted by prompt, pair and record id (the same votes in any
    order give the same list)."""
    check_options(min_agreement=min_agreement, ties=ties, granularity=granularity)
    by_pair: dict[tuple[int, str, str], list[Vote]] = defaultdict(list)
    counts = PairingCounts()
    prompt_of_pair: dict[tuple[str, str], int] = {}
    for vote in votes:
        _check_vote(vote)
        first, second = sorted((vote.left_video, vote.right_video))
        known_prompt = prompt_of_pair.setdefault((first, second), vote.prompt_id)
        if known_prompt != vote.prompt_id:
            raise PairsError(f"videos {first} and {second} are paired under two prompts")
        by_pair[(vote.prompt_id, first, second)].append(vote)
        counts.votes += 1

    records: list[PreferencePair] = []
    for (prompt_id, first, second), pair_votes in sorted(by_pair.items()):
        counts.pairs += 1
        votes_for = {first: 0, second: 0}
        tie_votes = 0
        for vote in pair_votes:
            if vote.choice == "tie":
                tie_votes += 1
            else:
                votes_for[preferred(vote.choice, vote.left_video, vote.right_video)] += 1
        outcome = decide(first, votes_for[first], second, votes_for[second], tie_votes)
        if outcome.chosen is None:
            counts.tie_pairs += 1
        if outcome.agreement < min_agreement:
            counts.below_min_agreement += 1
            continue
        the_pair_id = pair_id(first, second)
        if granularity == "pair":
            if outcome.chosen is None and ties == "drop":
                counts.dropped_ties += 1
                continue
            chosen = outcome.chosen or first
            rejected = second if chosen == first else first
            records.append(
                PreferencePair(
                    record_id=the_pair_id,
                    pair_id=the_pair_id,
                    prompt_id=prompt_id,
                    chosen=chosen,
                    rejected=rejected,
                    label=DECIDED_LABEL if outcome.chosen else TIE_LABEL,
                    votes_chosen=votes_for[chosen],
                    votes_rejected=votes_for[rejected],
                    votes_tie=tie_votes,
                    agreement=outcome.agreement,
                    annotators=tuple(sorted(v.annotator for v in pair_votes)),
                    campaigns=tuple(sorted({v.campaign for v in pair_votes})),
                )
            )
            continue
        for vote in pair_votes:
            if vote.choice == "tie" and ties == "drop":
                counts.dropped_ties += 1
                continue
            chosen = preferred(vote.choice, vote.left_video, vote.right_video) or first
            rejected = second if chosen == first else first
            records.append(
                PreferencePair(
                    record_id=_short_hash(
                        "judgment", the_pair_id, vote.campaign, vote.annotator, vote.judgment_id
                    ),
                    pair_id=the_pair_id,
                    prompt_id=prompt_id,
                    chosen=chosen,
                    rejected=rejected,
                    label=TIE_LABEL if vote.choice == "tie" else DECIDED_LABEL,
                    votes_chosen=votes_for[chosen],
                    votes_rejected=votes_for[rejected],
                    votes_tie=tie_votes,
                    agreement=outcome.agreement,
                    annotators=(vote.annotator,),
                    campaigns=(vote.campaign,),
                )
            )
    records.sort(key=lambda r: (r.prompt_id, r.pair_id, r.record_id))
    counts.records = len(records)
    return records, counts


def normalise_prompt_text(text: str) -> str:
    """The form of a prompt's text that decides its split: casefolded, whitespace runs made one space, stripped."""
    return " ".join(text.casefold().split())


def split_of(prompt_text: str, *, seed: str, validation_fraction: float) -> Split:
    """'validation' for a stable share of prompt texts (about `validation_fraction`), 'train' for the rest."""
    check_split(seed=seed, validation_fraction=validation_fraction)
    digest = hashlib.sha256(f"{seed}\x1f{normalise_prompt_text(prompt_text)}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if position < validation_fraction else "train"


def check_split(*, seed: str, validation_fraction: float) -> None:
    if not 0.0 <= validation_fraction < 1.0:
        raise PairsError(f"the validation fraction must be at least 0 and below 1; got {validation_fraction}")
    if not isinstance(seed, str):
        raise PairsError("the split seed must be text")


def split_by_prompt(
    prompt_texts: Mapping[int, str], *, seed: str, validation_fraction: float
) -> dict[int, Split]:
    """The split of every prompt, given as {prompt id: text}: one side per prompt, and one side per
    normalised text, so neither a prompt nor its text is on both sides."""
    return {
        pid: split_of(prompt_texts[pid], seed=seed, validation_fraction=validation_fraction)
        for pid in sorted(prompt_texts)
    }


def aggregate_scores(rows: Iterable[ScoreRow]) -> list[VideoScores]:
    """Per-video Metric-2 scores: means over the video's score rows, sorted by prompt and video."""
    by_video: dict[str, list[ScoreRow]] = defaultdict(list)
    for row in rows:
        if len(row.scores) != len(DIMENSIONS) or not all(1 <= s <= 5 for s in row.scores):
            raise PairsError(f"scores of video {row.video} must be four values from 1 to 5; got {row.scores}")
        earlier = by_video[row.video]
        if earlier and earlier[0].prompt_id != row.prompt_id:
            raise PairsError(f"video {row.video} is scored under two prompts")
        earlier.append(row)
    result = []
    for video, video_rows in by_video.items():
        n = len(video_rows)
        means = tuple(sum(r.scores[d] for r in video_rows) / n for d in range(len(DIMENSIONS)))
        result.append(
            VideoScores(
                video=video,
                prompt_id=video_rows[0].prompt_id,
                n=n,
                means=means,  # type: ignore[arg-type]
                by_annotator=tuple(sorted((r.annotator, r.scores) for r in video_rows)),
            )
        )
    result.sort(key=lambda s: (s.prompt_id, s.video))
    return result


def partition(items: Sequence, split_of_prompt: dict[int, Split]) -> dict[Split, list]:
    """Items (with a `prompt_id`) divided by their prompt's split, order kept."""
    parts: dict[Split, list] = {split: [] for split in SPLITS}
    for item in items:
        parts[split_of_prompt[item.prompt_id]].append(item)
    return parts
