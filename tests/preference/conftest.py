"""Campaigns with judgments whose export is known by hand. The campaign fixtures are the shared ones
in tests/campaign_fixtures.py (real videos, made by `create_campaign`); judgments are written with the ORM, as seen by the
annotator (left video, right video, choice)."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import (
    AnnotatorExclusion,
    Assignment,
    Campaign,
    Item,
    Judgment,
    ProblemReport,
    RubricScore,
)

SEEN_CHOICE = {
    ("slot0", False): "left",
    ("slot0", True): "right",
    ("slot1", False): "right",
    ("slot1", True): "left",
}


def judge(item: Item, annotator, winner: str, *, mirrored: bool = False, is_repeat: bool = False) -> Judgment:
    """A paired judgment on `item`: `winner` is 'slot0', 'slot1' or 'tie' (canonical); `mirrored` shows slot 1
    on the left."""
    slots = [iv.video for iv in item.item_videos.order_by("slot")]
    left, right = (slots[1], slots[0]) if mirrored else (slots[0], slots[1])
    choice = "tie" if winner == "tie" else SEEN_CHOICE[(winner, mirrored)]
    return Judgment.objects.create(
        campaign=item.campaign,
        item=item,
        annotator=annotator,
        prompt=item.prompt,
        is_repeat=is_repeat,
        choice=choice,
        left_model=left.model,
        right_model=right.model,
        left_video=left,
        right_video=right,
    )


def score(item: Item, annotator, values: tuple[int, int, int, int], *, is_repeat: bool = False) -> Judgment:
    video = item.item_videos.get().video
    judgment = Judgment.objects.create(
        campaign=item.campaign, item=item, annotator=annotator, prompt=item.prompt, is_repeat=is_repeat
    )
    RubricScore.objects.create(
        judgment=judgment,
        model=video.model,
        video=video,
        instruction_following=values[0],
        motion_smoothness=values[1],
        physical_plausibility=values[2],
        aesthetic_appeal=values[3],
    )
    return judgment


def report_problem(item: Item, annotator) -> None:
    assignment = Assignment.objects.create(
        campaign=item.campaign,
        item=item,
        annotator=annotator,
        presentation=[0, 1],
        status=Assignment.Status.PROBLEM,
        expires_at=timezone.now() + timedelta(minutes=15),
    )
    ProblemReport.objects.create(assignment=assignment, kind=ProblemReport.Kind.VIDEO_BROKEN)


@dataclass
class Scenario:
    pairwise: Campaign
    seed_preference: Campaign
    rubric: Campaign
    people: dict = field(default_factory=dict)
    # (campaign name, prompt id, chosen video id, rejected video id) -> (votes chosen, rejected, tie, agreement)
    expected_pairs: dict = field(default_factory=dict)
    expected_tie_pairs: dict = field(default_factory=dict)
    # video public id -> list of the four scores of each annotator that counts
    expected_scores: dict = field(default_factory=dict)
    left_out_votes: dict = field(default_factory=dict)
    left_out_scores: dict = field(default_factory=dict)

    @property
    def campaigns(self) -> list[Campaign]:
        return [self.pairwise, self.seed_preference, self.rubric]


def _videos(item: Item) -> list:
    return [iv.video for iv in item.item_videos.order_by("slot")]


@pytest.fixture
def scenario(campaign_factory) -> Scenario:
    """A pairwise, a seed-preference and a rubric campaign with hand-known outcomes:

    pairwise (slot 0 = Alpha), annotators p0..p3, p3 excluded by a manager:
      item 1: Alpha, Alpha (p1 saw it mirrored), Beta       -> Alpha chosen 2-1, agreement 2/3
      item 2: Beta x3                                        -> Beta chosen 3-0, agreement 1
      item 3: tie, tie, Alpha                                -> a tie (agreement 2/3): dropped or 0.5
      item 4: Alpha, Alpha, then p2 reports a problem        -> left out (2 judgments)
      p3 (excluded): item 1 Beta, item 2 Alpha               -> left out (2)
      p0 repeat of item 1, mirrored, Beta                    -> left out (1)
      an imported judgment without videos                    -> left out (1)
    seed preference (one prompt, seeds 0, 1, 2; pairs (0,1), (0,2), (1,2)), annotators s0, s1:
      (0,1): seed 0 twice -> seed 0 chosen 2-0; (0,2): seed 2 and tie -> seed 2 chosen 1-0-1, agreement 1/2;
      (1,2): one each -> a 1-1 tie
    rubric (two prompts x Alpha, Beta, one video an item), annotators r0, r1, plus r1's repeat (left out).
    """
    pairwise = campaign_factory("pairwise", n_prompts=4, n_annotators=4, name="pairwise campaign")
    seed_pref = campaign_factory(
        "seed_preference", n_prompts=1, n_annotators=2, seeds=3, name="seed campaign"
    )
    rubric = campaign_factory("rubric", n_prompts=2, n_annotators=2, name="rubric campaign")
    scenario = Scenario(pairwise=pairwise, seed_preference=seed_pref, rubric=rubric)

    p = list(pairwise.annotators.order_by("username"))
    items = list(pairwise.items.order_by("position"))
    assert len(items) == 4 and len(p) == 4
    judge(items[0], p[0], "slot0")
    judge(items[0], p[1], "slot0", mirrored=True)
    judge(items[0], p[2], "slot1")
    for person in p[:3]:
        judge(items[1], person, "slot1", mirrored=person == p[2])
    judge(items[2], p[0], "tie")
    judge(items[2], p[1], "tie", mirrored=True)
    judge(items[2], p[2], "slot0")
    judge(items[3], p[0], "slot0")
    judge(items[3], p[1], "slot0")
    report_problem(items[3], p[2])
    AnnotatorExclusion.objects.create(campaign=pairwise, annotator=p[3], reason="clicked at random")
    judge(items[0], p[3], "slot1")
    judge(items[1], p[3], "slot0")
    judge(items[0], p[0], "slot1", mirrored=True, is_repeat=True)
    alpha, beta = (cm.model for cm in pairwise.campaign_models.order_by("position"))
    Judgment.objects.create(
        campaign=pairwise,
        annotator=p[1],
        prompt=items[0].prompt,
        source=Judgment.Source.IMPORT,
        choice="left",
        left_model=alpha,
        right_model=beta,
    )
    a1, b1 = _videos(items[0])
    a2, b2 = _videos(items[1])
    a3, b3 = _videos(items[2])
    name = pairwise.name
    scenario.expected_pairs[(name, items[0].prompt_id, a1.public_id, b1.public_id)] = (2, 1, 0, 2 / 3)
    scenario.expected_pairs[(name, items[1].prompt_id, b2.public_id, a2.public_id)] = (3, 0, 0, 1.0)
    scenario.expected_tie_pairs[(name, items[2].prompt_id, frozenset({a3.public_id, b3.public_id}))] = (
        2,
        2 / 3,
    )
    scenario.left_out_votes = {
        "repeat": 1,
        "excluded_annotator": 2,
        "prompt_not_in_campaign": 0,
        "problem_prompt": 2,
        "refused_prompt": 0,
        "no_video": 1,
    }

    s = list(seed_pref.annotators.order_by("username"))
    seed_items = list(seed_pref.items.order_by("position"))
    by_seeds = {tuple(v.seed for v in _videos(item)): item for item in seed_items}
    assert set(by_seeds) == {(0, 1), (0, 2), (1, 2)}
    judge(by_seeds[(0, 1)], s[0], "slot0")
    judge(by_seeds[(0, 1)], s[1], "slot0", mirrored=True)
    judge(by_seeds[(0, 2)], s[0], "slot1", mirrored=True)
    judge(by_seeds[(0, 2)], s[1], "tie")
    judge(by_seeds[(1, 2)], s[0], "slot0")
    judge(by_seeds[(1, 2)], s[1], "slot1")
    v0, v1 = _videos(by_seeds[(0, 1)])
    w0, w2 = _videos(by_seeds[(0, 2)])
    u1, u2 = _videos(by_seeds[(1, 2)])
    name = seed_pref.name
    scenario.expected_pairs[(name, v0.prompt_id, v0.public_id, v1.public_id)] = (2, 0, 0, 1.0)
    scenario.expected_pairs[(name, w2.prompt_id, w2.public_id, w0.public_id)] = (1, 0, 1, 0.5)
    scenario.expected_tie_pairs[(name, u1.prompt_id, frozenset({u1.public_id, u2.public_id}))] = (0, 0.5)

    r = list(rubric.annotators.order_by("username"))
    for n, item in enumerate(rubric.items.order_by("position")):
        video = item.item_videos.get().video
        for k, person in enumerate(r):
            values = (1 + (n + k) % 5, 1 + (2 * n + k) % 5, 1 + (n * k) % 5, 5 - (n + 2 * k) % 5)
            score(item, person, values)
            scenario.expected_scores.setdefault(video.public_id, []).append(values)
        if n == 0:
            score(item, r[1], (5, 5, 5, 5), is_repeat=True)
    scenario.left_out_scores = {
        "repeat": 1,
        "excluded_annotator": 0,
        "prompt_not_in_campaign": 0,
        "problem_prompt": 0,
        "refused_prompt": 0,
        "no_video": 0,
    }
    scenario.people = {"pairwise": p, "seed": s, "rubric": r}
    return scenario


@pytest.fixture
def annotator_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="plain-annotator", password="pw-annotate-1")
    client.force_login(user)
    return client
