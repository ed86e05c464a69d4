"""Demo campaigns: one of each kind over the demo clips, demo annotators, gold items known by construction."""

import pytest

from annotation.demo import DEMO_ANNOTATORS, load_demo_campaigns
from annotation.models import Campaign, Item
from generation.demo import load_demo

pytestmark = pytest.mark.django_db


def test_demo_campaigns_cover_every_kind_with_gold_items_and_are_created_once(make_benchmark):
    benchmark = make_benchmark([f"prompt {i}" for i in range(1, 5)], slug="step-video-t2v-eval")
    load_demo(benchmark, prompts=3)
    result = load_demo_campaigns(benchmark)
    assert sorted(result["passwords"]) == sorted(DEMO_ANNOTATORS)
    assert sorted(Campaign.objects.values_list("kind", flat=True)) == sorted(Campaign.Kind.values)
    for campaign in Campaign.objects.all():
        assert campaign.items.exists(), campaign.kind
        assert campaign.annotators.count() == len(DEMO_ANNOTATORS)
    gold = Item.objects.exclude(gold_answer="").prefetch_related("item_videos__video")
    assert gold.exists()
    for item in gold:
        kinds = [iv.video.generation_settings["demo_kind"] for iv in item.item_videos.order_by("slot")]
        better = 0 if item.gold_answer == Item.GoldAnswer.SLOT_0 else 1
        assert kinds[better] == "smooth" and kinds[1 - better] == "frozen"
    again = load_demo_campaigns(benchmark)
    assert again == {"passwords": {}, "campaigns": []} and Campaign.objects.count() == 4


def test_demo_campaigns_need_the_demo_models(make_benchmark):
    benchmark = make_benchmark(["only prompt"], slug="step-video-t2v-eval")
    with pytest.raises(ValueError, match="load the demo models"):
        load_demo_campaigns(benchmark)
