"""Demo campaigns: one of each kind over the demo clips, demo annotators, gold items known by construction."""

import re

import pytest
from django.urls import reverse

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
    assert again == {"passwords": {}, "campaigns": [], "judgments": 0} and Campaign.objects.count() == 4


def test_demo_campaigns_need_the_demo_models(make_benchmark):
    benchmark = make_benchmark(["only prompt"], slug="step-video-t2v-eval")
    with pytest.raises(ValueError, match="load the demo models"):
        load_demo_campaigns(benchmark)


def test_demo_judgments_fill_the_results_leaderboard_and_quality_pages_and_say_they_are_demo_data(
    make_benchmark, admin_client
):
    benchmark = make_benchmark([f"prompt {i}" for i in range(1, 5)], slug="step-video-t2v-eval")
    load_demo(benchmark, prompts=3)
    result = load_demo_campaigns(benchmark)
    assert result["judgments"] > 0
    for campaign in Campaign.objects.all():
        assert campaign.judgments.filter(annotator__username__in=DEMO_ANNOTATORS).exists(), campaign.kind
        results = admin_client.get(reverse("campaign-results", args=[campaign.pk])).content.decode()
        analysed = int(re.search(r'class="judgments-analysed">(\d+)', results).group(1))
        assert analysed > 0 and "demo-notice" in results
        quality = admin_client.get(reverse("campaign-quality", args=[campaign.pk])).content.decode()
        answers = [
            int(n)
            for n in re.findall(
                r'data-annotator="annotator\d"[^>]*>\s*<td>[^<]*(?:<span[^>]*>[^<]*</span>)?</td>\s*<td class="num">(\d+)',
                quality,
            )
        ]
        assert len(answers) == len(DEMO_ANNOTATORS) and sorted(answers)[-2] > 0 and "demo-notice" in quality
    board = admin_client.get(reverse("leaderboard")).content.decode()
    assert int(re.search(r'class="battles">(\d+)', board).group(1)) > 0 and "demo-notice" in board
    paired_gold = Item.objects.exclude(gold_answer="").filter(judgments__isnull=False)
    assert paired_gold.exists()  # the quality pages' gold accuracy has answers to score
    home = admin_client.get("/").content.decode()
    assert "Read the results" in home and "demo annotator" in home
