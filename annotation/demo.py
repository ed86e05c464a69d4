"""Demo campaigns over the demo models' clips (generation.demo), so a newcomer can try every kind of
annotation at once: demo annotator accounts, one campaign of each kind, and gold items where one side
is a smooth clip and the other a frozen one (the answer is known by construction). The demo annotators
then answer part of each campaign through the same services people use (`answer_as_demo_annotators`),
so results, leaderboard and quality pages have something to show; those judgments are demo data, made up
from how each clip was rendered, and the pages say so wherever a demo model is compared."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from generation.demo import DEMO_MODELS
from generation.models import Benchmark, VideoModel

from .assignment import next_assignment
from .campaigns import CampaignSpec, create_campaign
from .judging import submit_answer
from .models import RUBRIC_DIMENSIONS, Campaign, Item, ItemVideo
from .renditions import prepare_campaign_media

DEMO_ANNOTATORS = ("annotator1", "annotator2", "annotator3")
DEMO_CAMPAIGNS = (
    ("Demo: pairwise A vs B", Campaign.Kind.PAIRWISE, {}),
    ("Demo: rubric scoring", Campaign.Kind.RUBRIC, {"rubric_layout": Campaign.RubricLayout.TOGETHER}),
    ("Demo: seed preference (A)", Campaign.Kind.SEED_PREFERENCE, {}),
    ("Demo: A/B with shared noise", Campaign.Kind.AB_SHARED_NOISE, {}),
)
# How good each kind of demo clip looks on a 1-5 scale: the demo annotators' answers follow it, with noise.
DEMO_CLIP_QUALITY = {"smooth": 4.5, "jitter": 3.0, "dropped_frames": 2.5, "frozen": 1.5}
# Share of a campaign's items each demo annotator answers (rounded down): the first does everything, the
# second half (so items have two judgments to agree on), the third a few; with two judgments per item the
# rest is left for a newcomer to try as any demo annotator.
DEMO_ANSWER_SHARES = {"annotator1": 1.0, "annotator2": 0.5, "annotator3": 0.2}
DEMO_SECONDS_PER_ANSWER = (4, 25)
INSTRUCTIONS = "Demo campaign over synthetic clips. Watch both clips, then answer with the keys shown."


def _annotators() -> tuple[list, dict[str, str]]:
    User = get_user_model()
    group, _ = Group.objects.get_or_create(name="annotators")
    people, passwords = [], {}
    for username in DEMO_ANNOTATORS:
        user = User.objects.filter(username=username).first()
        if user is None:
            passwords[username] = secrets.token_urlsafe(9)
            user = User.objects.create_user(username=username, password=passwords[username])
        user.groups.add(group)
        people.append(user)
    return people, passwords


def _mark_frozen_clips_as_gold(campaign: Campaign) -> int:
    """Pairs of one smooth and one frozen clip have a known answer: the smooth one is better."""
    marked = 0
    for item in campaign.items.prefetch_related("item_videos__video"):
        kinds = [iv.video.generation_settings.get("demo_kind") for iv in item.item_videos.order_by("slot")]
        answer = {("smooth", "frozen"): Item.GoldAnswer.SLOT_0, ("frozen", "smooth"): Item.GoldAnswer.SLOT_1}
        if tuple(kinds) in answer:
            Item.objects.filter(pk=item.pk).update(gold_answer=answer[tuple(kinds)])
            marked += 1
    return marked


def _perceived_quality(kind: str, rng: random.Random) -> float:
    return DEMO_CLIP_QUALITY.get(kind, 3.0) + rng.gauss(0, 0.8)


def demo_answer(shown_kinds: list[str], *, rubric: bool, rng: random.Random) -> dict:
    """The answer a demo annotator gives to videos rendered as `shown_kinds` (in display order): a choice
    for two videos, four 1-5 scores per video for a rubric item."""
    if rubric:
        return {
            "scores": [
                {
                    "position": position,
                    **{
                        dim: min(5, max(1, round(_perceived_quality(kind, rng)))) for dim in RUBRIC_DIMENSIONS
                    },
                }
                for position, kind in enumerate(shown_kinds)
            ]
        }
    left, right = (_perceived_quality(kind, rng) for kind in shown_kinds)
    if abs(left - right) < 0.6:
        return {"choice": "tie"}
    return {"choice": "left" if left > right else "right"}


def answer_as_demo_annotators(campaign: Campaign, people: list, *, seed: int = 0) -> int:
    """Let the demo annotators answer their share of the campaign (DEMO_ANSWER_SHARES) through
    next_assignment and submit_answer, each answer a few seconds after the last. Returns the number of
    judgments made; a campaign they already answered gets none."""
    if campaign.judgments.exists():
        return 0
    items = campaign.items.count()
    made = 0
    for person in people:
        share = DEMO_ANSWER_SHARES.get(person.username, 0.0)
        rng = random.Random(f"{seed}:{campaign.name}:{person.username}")
        clock = timezone.now() - timedelta(hours=2)
        for _ in range(int(share * items)):
            assignment = next_assignment(campaign, person, now=clock)
            if assignment is None:
                break
            kinds_by_slot = {
                row.slot: row.video.generation_settings.get("demo_kind", "")
                for row in ItemVideo.objects.filter(item_id=assignment.item_id).select_related("video")
            }
            payload = demo_answer(
                [kinds_by_slot[slot] for slot in assignment.presentation],
                rubric=campaign.kind == Campaign.Kind.RUBRIC,
                rng=rng,
            )
            clock += timedelta(seconds=rng.uniform(*DEMO_SECONDS_PER_ANSWER))
            submit_answer(token=assignment.token, annotator=person, payload=payload, now=clock)
            made += 1
    return made


def load_demo_campaigns(benchmark: Benchmark) -> dict:
    """Create the demo annotators and campaigns (once; running it again adds nothing). Returns the new
    annotators' one-time passwords, the campaigns created and the demo judgments made."""
    models = {m.name: m for m in VideoModel.objects.filter(name__in=DEMO_MODELS, version="")}
    if len(models) != len(DEMO_MODELS):
        raise ValueError("load the demo models and clips first (manage.py load_demo)")
    model_a, model_b = (models[name] for name in DEMO_MODELS)
    created, judgments = [], 0
    with transaction.atomic():
        people, passwords = _annotators()
        for name, kind, options in DEMO_CAMPAIGNS:
            if Campaign.objects.filter(name=name).exists():
                continue
            compared = [model_a] if kind == Campaign.Kind.SEED_PREFERENCE else [model_a, model_b]
            campaign = create_campaign(
                CampaignSpec(
                    name=name,
                    kind=kind,
                    benchmark=benchmark,
                    models=compared,
                    annotators=people,
                    judgments_per_item=2,
                    description=INSTRUCTIONS,
                    **options,
                )
            )
            if campaign.is_paired:
                _mark_frozen_clips_as_gold(campaign)
            # The demo annotators answer now, so the campaign's media is made here rather than by the job
            # create_campaign queued (which then finds every rendition complete and keeps it).
            prepare_campaign_media(campaign)
            created.append(campaign.name)
            judgments += answer_as_demo_annotators(campaign, people)
    return {"passwords": passwords, "campaigns": created, "judgments": judgments}
