import pytest

from annotation.campaigns import CampaignError, CampaignSpec, create_campaign
from annotation.models import Campaign, ExcludedPrompt, Item

pytestmark = pytest.mark.django_db


def slots(item):
    return [iv.video for iv in item.item_videos.order_by("slot")]


def test_pairwise_items_put_model_a_in_slot_0_and_list_refused_and_missing_prompts(library, annotators):
    benchmark, (alpha, beta) = library(["a", "b", "c", "d"], missing=[(1, 2)], refused=[(0, 3)])
    campaign = create_campaign(
        CampaignSpec(
            name="c1", kind="pairwise", benchmark=benchmark, models=[alpha, beta], annotators=annotators(2)
        )
    )
    items = list(campaign.items.order_by("position"))
    assert [i.prompt.position for i in items] == [1, 4]
    for item in items:
        assert [v.model for v in slots(item)] == [alpha, beta]
        assert item.required_judgments == 3
    excluded = {(e.prompt.position, e.model, e.reason) for e in campaign.excluded_prompts.all()}
    assert excluded == {(2, beta, ExcludedPrompt.Reason.NO_VIDEO), (3, alpha, ExcludedPrompt.Reason.REFUSED)}


def test_rubric_single_makes_one_item_per_video_and_together_one_per_prompt(library, annotators):
    benchmark, models = library(["a", "b"], ("M1", "M2", "M3"))
    people = annotators(1)
    single = create_campaign(
        CampaignSpec(name="s", kind="rubric", benchmark=benchmark, models=models, annotators=people)
    )
    together = create_campaign(
        CampaignSpec(
            name="t",
            kind="rubric",
            benchmark=benchmark,
            models=models,
            annotators=people,
            rubric_layout="together",
        )
    )
    assert single.items.count() == 6 and all(len(slots(i)) == 1 for i in single.items.all())
    assert together.items.count() == 2 and all(len(slots(i)) == 3 for i in together.items.all())


def test_seed_preference_pairs_seeds_of_one_model_and_excludes_single_seed_prompts(library, annotators):
    benchmark, (alpha,) = library(["a", "b"], ("Alpha",), seeds=3)
    # prompt 2 keeps a single seed
    alpha.videos.filter(prompt__position=2, seed__gt=0).delete()
    campaign = create_campaign(
        CampaignSpec(
            name="sp", kind="seed_preference", benchmark=benchmark, models=[alpha], annotators=annotators(1)
        )
    )
    pairs = [tuple(v.seed for v in slots(i)) for i in campaign.items.all()]
    assert sorted(pairs) == [(0, 1), (0, 2), (1, 2)]
    assert campaign.excluded_prompts.get().reason == ExcludedPrompt.Reason.TOO_FEW_SEEDS


def test_ab_campaign_pairs_videos_made_from_the_same_noise(library, annotators):
    benchmark, (base, tuned) = library(["a"], ("Base", "Tuned"), seeds=2, noise=True)
    campaign = create_campaign(
        CampaignSpec(
            name="ab",
            kind="ab_shared_noise",
            benchmark=benchmark,
            models=[base, tuned],
            annotators=annotators(1),
        )
    )
    for item in campaign.items.all():
        left, right = slots(item)
        assert (left.model, right.model) == (base, tuned)
        assert left.noise_id == right.noise_id != ""
    assert campaign.items.count() == 2


def test_every_annotator_overlap_requires_one_judgment_per_annotator(library, annotators):
    benchmark, models = library(["a", "b"])
    campaign = create_campaign(
        CampaignSpec(
            name="e",
            kind="pairwise",
            benchmark=benchmark,
            models=models,
            annotators=annotators(6),
            overlap="every_annotator",
        )
    )
    assert set(campaign.items.values_list("required_judgments", flat=True)) == {6}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "nonsense"}, "unknown campaign kind"),
        ({"models": "one"}, "compares two models"),
        ({"repeat_fraction": 0.9}, "between 0 and 0.5"),
        ({"description": "Compare Alpha with the other"}, "name a compared model"),
        ({"name": "  "}, "needs a name"),
    ],
)
def test_bad_set_up_is_refused_and_stores_nothing(library, annotators, change, message):
    benchmark, models = library(["a"])
    fields = {
        "name": "x",
        "kind": "pairwise",
        "benchmark": benchmark,
        "models": models,
        "annotators": annotators(1),
    }
    if change.get("models") == "one":
        change = {"models": models[:1]}
    fields.update(change)
    with pytest.raises(CampaignError, match=message):
        create_campaign(CampaignSpec(**fields))
    assert Campaign.objects.count() == 0 and Item.objects.count() == 0


def test_campaign_without_any_complete_prompt_is_refused(library, annotators):
    benchmark, models = library(["a"], missing=[(1, 1)])
    with pytest.raises(CampaignError, match="no prompt has the videos"):
        create_campaign(
            CampaignSpec(
                name="x", kind="pairwise", benchmark=benchmark, models=models, annotators=annotators(1)
            )
        )
    assert Campaign.objects.count() == 0


def test_factory_builds_each_kind(campaign_factory):
    for kind in Campaign.Kind.values:
        campaign = campaign_factory(kind, n_prompts=2, n_annotators=1)
        assert campaign.items.exists(), kind
