"""Quality control on hand-built judgments whose figures are known: gold accuracy, self-consistency after
un-mirroring, agreement with the others, position bias, time, contradictions with rubric scores, and
exclusions that keep the rows."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from scipy.stats import binomtest

from annotation.campaigns import CampaignError, CampaignSpec, create_campaign
from annotation.models import RUBRIC_DIMENSIONS, Assignment, Item, Judgment, RubricScore
from annotation.quality import annotator_quality, campaign_agreement, contradictions, gold_preferences
from annotation.services import exclude_annotator, include_annotator, set_gold_answer
from metrics.human.judgments import load_campaign
from metrics.human.results import DIMENSION_LABELS, build_results, find_table
from metrics.stats.agreement import krippendorff_alpha

pytestmark = pytest.mark.django_db

NORMAL, MIRRORED = [0, 1], [1, 0]


def answer(item, annotator, choice, *, shown=None, is_repeat=False, duration_ms=None):
    """A finished assignment and its judgment, stored as the annotator saw it (shown = slots left to
    right), the way the annotator's page stores answers."""
    now = timezone.now()
    by_slot = {iv.slot: iv.video for iv in item.item_videos.select_related("video")}
    shown = sorted(by_slot) if shown is None else shown
    videos = [by_slot[slot] for slot in shown]
    assignment = Assignment.objects.create(
        campaign=item.campaign,
        item=item,
        annotator=annotator,
        presentation=list(shown),
        is_repeat=is_repeat,
        status=Assignment.Status.DONE,
        expires_at=now + timedelta(minutes=15),
        finished_at=now,
    )
    if not is_repeat:  # as the answering transaction counts it
        Item.objects.filter(pk=item.pk).update(answered=F("answered") + 1)
    fields = {
        "campaign": item.campaign,
        "item": item,
        "assignment": assignment,
        "annotator": annotator,
        "prompt": item.prompt,
        "is_repeat": is_repeat,
        "duration_ms": duration_ms,
    }
    if choice is None:  # rubric: scores are added by the caller
        return Judgment.objects.create(**fields)
    return Judgment.objects.create(
        **fields,
        choice=choice,
        left_model=videos[0].model,
        right_model=videos[1].model,
        left_video=videos[0],
        right_video=videos[1],
    )


def score(judgment, video, value, *, shown_position=0):
    """One rubric score row; `value` is one number for all four dimensions or a 4-tuple."""
    values = value if isinstance(value, tuple) else (value,) * 4
    return RubricScore.objects.create(
        judgment=judgment,
        model=video.model,
        video=video,
        shown_position=shown_position,
        instruction_following=values[0],
        motion_smoothness=values[1],
        physical_plausibility=values[2],
        aesthetic_appeal=values[3],
    )


def items_of(campaign):
    return list(campaign.items.order_by("position"))


@pytest.fixture
def judged(campaign_factory):
    """A pairwise campaign of four items answered by three annotators; items 1-3 are gold
    (slot0, tie, slot1). In canonical terms (slot of the preferred video):

        a0: slot0 tie   slot0 slot1   + repeats of 1 (agrees, other side), 3 (disagrees, same side),
                                        4 (agrees, other side)
        a1: slot0 slot1 slot1 slot1
        a2: slot0 slot1 slot0 slot0
    """
    campaign = campaign_factory("pairwise", n_prompts=4, n_annotators=3)
    a0, a1, a2 = campaign.annotators.order_by("username")
    i1, i2, i3, i4 = items_of(campaign)
    for item, gold in zip((i1, i2, i3), ("slot0", "tie", "slot1"), strict=True):
        set_gold_answer(item, gold)
    durations = iter(range(1000, 8000, 1000))
    for item, choice, shown, is_repeat in [
        (i1, "right", MIRRORED, False),  # slot0
        (i2, "tie", NORMAL, False),
        (i3, "left", NORMAL, False),  # slot0
        (i4, "left", MIRRORED, False),  # slot1
        (i1, "left", NORMAL, True),  # slot0 again, on the other side
        (i3, "left", MIRRORED, True),  # slot1 now, on the same side
        (i4, "right", NORMAL, True),  # slot1 again, on the other side
    ]:
        answer(item, a0, choice, shown=shown, is_repeat=is_repeat, duration_ms=next(durations))
    for item, choice in zip((i1, i2, i3, i4), ("left", "right", "right", "right"), strict=True):
        answer(item, a1, choice, duration_ms=500)
    for item, choice, shown in [
        (i1, "right", MIRRORED),
        (i2, "left", MIRRORED),
        (i3, "left", NORMAL),
        (i4, "left", NORMAL),
    ]:
        answer(item, a2, choice, shown=shown)
    return campaign, (a0, a1, a2)


def by_name(figures):
    return {f.username: f for f in figures}


def test_gold_accuracy_self_consistency_position_bias_and_time(judged):
    campaign, (a0, a1, a2) = judged
    figures = by_name(annotator_quality(campaign))
    first = figures[a0.username]
    assert (first.gold_correct, first.gold_n) == (2, 3)  # first showings only
    assert first.gold_accuracy == pytest.approx(2 / 3)
    assert (figures[a1.username].gold_correct, figures[a2.username].gold_correct) == (2, 1)
    # comparing sides instead of videos would give 1/3
    assert (first.repeat_agreeing, first.repeat_n) == (2, 3)
    assert figures[a1.username].repeat_n == 0 and figures[a1.username].self_consistency is None
    # Position bias is over the judgments that count, as in the results: a0's first showings chose right,
    # tie, left, left (the repeats, left, left, right, are no results)
    assert first.position_n == 4
    assert (first.left_share, first.tie_share, first.right_share) == pytest.approx((2 / 4, 1 / 4, 1 / 4))
    assert first.position_p_value == pytest.approx(binomtest(2, 3, 0.5).pvalue)
    assert first.median_duration_ms == 4000
    assert figures[a2.username].median_duration_ms is None
    assert first.judgments == 7


def test_agreement_with_the_majority_of_the_others_and_pairwise_share(judged):
    campaign, (a0, a1, a2) = judged
    figures = by_name(annotator_quality(campaign))
    # Canonical answers (a = slot 0's video): a0 a tie a b; a1 a b b b; a2 a b a a. The majority of the
    # others (the one rule: a side wins with more votes than the other side and at least as many ties):
    # a0: item 1 a (agrees), 2 b, 3 tie (a1 and a2 split), 4 tie
    assert (figures[a0.username].majority_agreeing, figures[a0.username].majority_n) == (1, 4)
    # a1: item 1 a (agrees), 2 b over a tie (agrees), 3 a, 4 tie
    assert (figures[a1.username].majority_agreeing, figures[a1.username].majority_n) == (2, 4)
    # a2: item 1 a (agrees), 2 b over a tie (agrees), 3 tie, 4 b
    assert (figures[a2.username].majority_agreeing, figures[a2.username].majority_n) == (2, 4)
    # a0 agrees with a1 on items 1 and 4, with a2 on items 1 and 3
    assert (figures[a0.username].pairwise_same, figures[a0.username].pairwise_n) == (4, 8)

    exclude_annotator(campaign, a2, reason="clicks at random")
    figures = by_name(annotator_quality(campaign))
    # only a1 counts as "the others" now: a0 agrees on items 1 and 4
    assert (figures[a0.username].majority_agreeing, figures[a0.username].majority_n) == (2, 4)
    assert (figures[a0.username].pairwise_same, figures[a0.username].pairwise_n) == (2, 4)
    excluded = figures[a2.username]
    assert excluded.excluded and excluded.exclusion_reason == "clicks at random"
    # still measured against the others (a0 and a1), as if counted
    assert (excluded.majority_agreeing, excluded.majority_n) == (2, 4)
    assert excluded.position_n == 4


def test_campaign_agreement_is_the_results_overall_alpha_over_the_judgments_that_count(judged):
    campaign, (a0, a1, a2) = judged
    matrix = [["a", "tie", "a", "b"], ["a", "b", "b", "b"], ["a", "b", "a", "a"]]
    order = ("a", "tie", "b")
    agreement = campaign_agreement(campaign)
    assert (agreement.annotators, agreement.units) == (3, 4)
    assert agreement.alpha == pytest.approx(krippendorff_alpha(matrix, "nominal", categories=order))
    overall = find_table(build_results(load_campaign(campaign), rounds=100), "agreement")["rows"][0]
    assert overall["category"] == "Overall"
    assert (overall["alpha"], overall["units"]) == (agreement.alpha, agreement.units)
    exclude_annotator(campaign, a2)
    agreement = campaign_agreement(campaign)
    assert agreement.annotators == 2
    assert agreement.alpha == pytest.approx(krippendorff_alpha(matrix[:2], "nominal", categories=order))


def test_excluding_keeps_the_judgments_and_can_be_undone(judged):
    campaign, (a0, a1, a2) = judged
    before = Judgment.objects.filter(annotator=a2).count()
    exclude_annotator(campaign, a2, reason="r")
    assert Judgment.objects.filter(annotator=a2).count() == before == 4
    with pytest.raises(CampaignError, match="already excluded"):
        exclude_annotator(campaign, a2)
    include_annotator(campaign, a2)
    assert not campaign.annotator_exclusions.exists()
    with pytest.raises(CampaignError, match="not excluded"):
        include_annotator(campaign, a2)


def test_excluding_someone_outside_the_campaign_is_refused(judged, django_user_model):
    campaign, _ = judged
    stranger = django_user_model.objects.create_user("stranger", password="pw-x-123456")
    with pytest.raises(CampaignError, match="not an annotator of this campaign"):
        exclude_annotator(campaign, stranger)
    assert not campaign.annotator_exclusions.exists()


def test_gold_answers_are_checked(judged, campaign_factory):
    campaign, _ = judged
    item = items_of(campaign)[3]
    with pytest.raises(CampaignError, match="unknown gold answer"):
        set_gold_answer(item, "left")
    assert Item.objects.get(pk=item.pk).gold_answer == ""
    rubric = campaign_factory("rubric", n_prompts=1, n_annotators=1)
    with pytest.raises(CampaignError, match="pairwise and A/B"):
        set_gold_answer(rubric.items.first(), "slot0")
    set_gold_answer(items_of(campaign)[0], "")
    assert Item.objects.get(pk=items_of(campaign)[0].pk).gold_answer == ""


def test_gold_answers_name_slots_and_are_compared_as_canonical_preferences(judged):
    campaign, _ = judged
    i1, i2, i3, i4 = items_of(campaign)
    # slot 0 holds model A's video in a pairwise campaign
    assert gold_preferences(campaign) == {i1.pk: "a", i2.pk: "tie", i3.pk: "b"}


def test_rubric_repeats_agree_within_one_point(campaign_factory):
    campaign = campaign_factory("rubric", n_prompts=2, n_annotators=1, model_names=("Alpha",))
    (annotator,) = campaign.annotators.all()
    first_item, second_item = items_of(campaign)
    for item, first, again in [(first_item, 3, (4, 2, 3, 3)), (second_item, 3, (5, 3, 3, 3))]:
        video = item.item_videos.get().video
        score(answer(item, annotator, None), video, first)
        score(answer(item, annotator, None, is_repeat=True), video, again)
    (figures,) = annotator_quality(campaign)
    assert (figures.repeat_agreeing, figures.repeat_n) == (1, 2)
    assert figures.gold_n == 0 and figures.position_n == 0


@pytest.fixture
def pairwise_and_rubric(campaign_factory):
    """A pairwise campaign and a rubric campaign on the same benchmark and models, with the same
    annotators: a0 prefers Alpha on prompts 1 and 2 and Beta on prompt 3 while scoring Alpha 2 vs 4
    (gap 2), 3 vs 4 (gap exactly 1) and Beta 3.25 vs Alpha 4 (gap 0.75)."""
    pairwise = campaign_factory("pairwise", n_prompts=3, n_annotators=2)
    people = list(pairwise.annotators.order_by("username"))
    models = [entry.model for entry in pairwise.campaign_models.order_by("position")]
    rubric = create_campaign(
        CampaignSpec(
            name="rubric twin", kind="rubric", benchmark=pairwise.benchmark, models=models, annotators=people
        )
    )
    a0, a1 = people
    for item, choice in zip(items_of(pairwise), ("left", "left", "right"), strict=True):
        answer(item, a0, choice)
        answer(item, a1, "tie")
    wanted = {
        (1, "Alpha"): 2,
        (1, "Beta"): 4,
        (2, "Alpha"): 3,
        (2, "Beta"): 4,
        (3, "Alpha"): 4,
        (3, "Beta"): (3, 3, 3, 4),
    }
    for item in items_of(rubric):
        video = item.item_videos.select_related("video__model").get().video
        score(answer(item, a0, None), video, wanted[(item.prompt.position, video.model.name)])
    return pairwise, rubric, a0, a1


def test_contradictions_between_pairwise_answers_and_own_rubric_scores(pairwise_and_rubric):
    pairwise, rubric, a0, a1 = pairwise_and_rubric
    found = contradictions(pairwise)
    assert sorted(c.prompt_position for c in found) == [1, 2]
    assert {(c.preferred_mean, c.other_mean, c.matched_by) for c in found} == {
        (2.0, 4.0, "videos"),
        (3.0, 4.0, "videos"),
    }
    assert all(c.preferred.startswith("Alpha") and c.other.startswith("Beta") for c in found)
    figures = by_name(annotator_quality(pairwise))
    assert (figures[a0.username].contradictions, figures[a0.username].contradiction_n) == (2, 3)
    assert figures[a1.username].contradiction_n == 0  # ties and no scores: nothing to compare
    # the rubric campaign finds the same contradictions from its side
    assert sorted(c.judgment_id for c in contradictions(rubric)) == sorted(c.judgment_id for c in found)
    assert by_name(annotator_quality(rubric))[a0.username].contradictions == 2


def test_imported_pairwise_answers_are_compared_by_model(pairwise_and_rubric):
    pairwise, rubric, a0, a1 = pairwise_and_rubric
    Judgment.objects.filter(campaign=pairwise).delete()
    alpha, beta = [entry.model for entry in pairwise.campaign_models.order_by("position")]
    prompt = pairwise.benchmark.prompts.get(position=1)
    Judgment.objects.create(
        campaign=pairwise,
        annotator=a0,
        prompt=prompt,
        source="import",
        choice="right",
        left_model=beta,
        right_model=alpha,
    )
    (found,) = contradictions(pairwise)
    assert (found.matched_by, found.preferred_mean, found.other_mean) == ("models", 2.0, 4.0)


def test_rubric_agreement_is_the_results_overall_alpha_per_dimension(pairwise_and_rubric, admin_client):
    _, rubric, a0, a1 = pairwise_and_rubric
    for n, item in enumerate(items_of(rubric)):
        video = item.item_videos.get().video
        score(answer(item, a1, None), video, (2 + n % 3, 3, 1 + n % 5, 4))
    agreement = campaign_agreement(rubric)
    assert agreement.alpha is None and agreement.annotators == 2
    overall = {
        row["dimension"]: row
        for row in find_table(build_results(load_campaign(rubric), rounds=100), "rubric_agreement")["rows"]
        if row["category"] == "Overall"
    }
    assert [d.dimension for d in agreement.by_dimension] == list(RUBRIC_DIMENSIONS)
    for found in agreement.by_dimension:
        row = overall[DIMENSION_LABELS[found.dimension]]
        assert (found.alpha, found.units) == (row["alpha"], row["units"]) and found.units == 6
    assert any(d.alpha is not None for d in agreement.by_dimension)
    html = admin_client.get(f"/campaigns/{rubric.pk}/quality/").content.decode()
    for found in agreement.by_dimension:
        shown = "not defined yet" if found.alpha is None else f"{found.alpha:.3f}"
        assert f'<li data-dimension="{found.dimension}">' in html and shown in html
