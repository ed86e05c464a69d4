"""Demo campaigns over the demo models' clips (generation.demo), so a newcomer can try every kind of
annotation at once: demo annotator accounts, one campaign of each kind, and gold items where one side
is a smooth clip and the other a frozen one (the answer is known by construction)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from generation.demo import DEMO_MODELS
from generation.models import Benchmark, VideoModel

from .campaigns import CampaignSpec, create_campaign
from .models import Campaign, Item

DEMO_ANNOTATORS = ("annotator1", "annotator2", "annotator3")
DEMO_CAMPAIGNS = (
    ("Demo: pairwise A vs B", Campaign.Kind.PAIRWISE, {}),
    ("Demo: rubric scoring", Campaign.Kind.RUBRIC, {"rubric_layout": Campaign.RubricLayout.TOGETHER}),
    ("Demo: seed preference (A)", Campaign.Kind.SEED_PREFERENCE, {}),
    ("Demo: A/B with shared noise", Campaign.Kind.AB_SHARED_NOISE, {}),
)
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


def load_demo_campaigns(benchmark: Benchmark) -> dict:
    """Create the demo annotators and campaigns (once; running it again adds nothing). Returns the new
    annotators' one-time passwords and the campaigns created."""
    models = {m.name: m for m in VideoModel.objects.filter(name__in=DEMO_MODELS, version="")}
    if len(models) != len(DEMO_MODELS):
        raise ValueError("load the demo models and clips first (manage.py load_demo)")
    model_a, model_b = (models[name] for name in DEMO_MODELS)
    created = []
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
            created.append(campaign.name)
    return {"passwords": passwords, "campaigns": created}
