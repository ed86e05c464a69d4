"""The leaderboard: Bradley-Terry ratings from the stored judgments against hand-checkable cases (two
models, 3 wins to 1 loss: a gap of 400 log10(3)), ties as half a win, what is left out, the filters, the
Metric-2 and automatic-metric columns, and a bounded number of queries."""

from __future__ import annotations

import math

import pytest
from django.contrib.auth.models import Group

from annotation.models import AnnotatorExclusion, Campaign, CampaignModel, Judgment
from generation.models import Prompt, VideoModel
from metrics.automatic.models import AutoScore, ScoreSettings
from metrics.human.judgments import JudgmentFilters
from metrics.human.leaderboard import LeaderboardError, leaderboard, parse_filters
from tests.metrics.human.test_results import (
    build_rubric,
    empty_cache,
    make_campaign,
    make_world,
    paired_judgment,
    stored_video,
)

pytestmark = pytest.mark.django_db

__all__ = ["empty_cache"]  # the autouse fixture, shared

ROUNDS = 200
GAP_3_TO_1 = 400 * math.log10(3)


def rows_by_model(board: dict) -> dict[str, dict]:
    return {row["model"].split()[0]: row for row in board["tables"][0]["rows"]}


@pytest.fixture
def two_campaigns(django_user_model):
    """Campaign one (benchmark "one", annotators in the pool "experts"): Alpha beats Beta 3 times and
    loses once. Campaign two (benchmark "two"): Beta wins twice, two ties. Left out everywhere: a repeat
    and an excluded annotator's answers, which would otherwise reverse campaign one."""
    one = make_world(django_user_model, slug="one")
    two = make_world(django_user_model, slug="two")
    # One pair of models across both benchmarks: the second world's models are replaced by the first's.
    two["alpha"], two["beta"] = one["alpha"], one["beta"]
    for model in ("Alpha", "Beta"):
        for i in range(1, 7):
            two["videos"][(model, i)].model = one["alpha" if model == "Alpha" else "beta"]
            two["videos"][(model, i)].save(update_fields=["model"])
    experts = Group.objects.create(name="experts")
    experts.user_set.add(one["people"]["ann1"], one["people"]["ann2"])

    first = make_campaign(one, "pairwise", "Campaign one")
    for annotator, prompt, a_on_left, outcome in [
        ("ann1", 1, True, "win"),
        ("ann1", 2, False, "win"),
        ("ann2", 4, True, "win"),
        ("ann2", 5, False, "loss"),
    ]:
        paired_judgment(one, first, annotator, prompt, a_on_left, outcome)
    for prompt in (1, 2, 3, 4, 5):
        paired_judgment(one, first, "ann3", prompt, True, "loss")
    AnnotatorExclusion.objects.create(campaign=first, annotator=one["people"]["ann3"])
    paired_judgment(one, first, "ann1", 1, False, "loss", is_repeat=True)

    second = make_campaign(two, "ab_shared_noise", "Campaign two")
    for annotator, prompt, outcome in [
        ("ann1", 1, "loss"),
        ("ann1", 4, "loss"),
        ("ann2", 1, "tie"),
        ("ann2", 4, "tie"),
    ]:
        paired_judgment(two, second, annotator, prompt, prompt == 1, outcome)
    return {"one": one, "two": two, "first": first, "second": second}


def test_three_wins_to_one_give_a_gap_of_400_log10_3(two_campaigns):
    board = leaderboard(parse_filters({"campaign": str(two_campaigns["first"].pk)}), rounds=ROUNDS)
    rows = rows_by_model(board)
    assert board["battles"] == 4
    assert rows["Alpha"]["rating"] - rows["Beta"]["rating"] == pytest.approx(GAP_3_TO_1, abs=0.01)
    # Centred on 1000.
    assert rows["Alpha"]["rating"] == pytest.approx(1000 + GAP_3_TO_1 / 2, abs=0.01)
    assert (
        rows["Alpha"]["wins"],
        rows["Alpha"]["ties"],
        rows["Alpha"]["losses"],
        rows["Alpha"]["battles"],
    ) == (
        3,
        0,
        1,
        4,
    )
    assert (rows["Beta"]["wins"], rows["Beta"]["losses"]) == (1, 3)
    for row in rows.values():
        assert row["ci_low"] <= row["rating"] <= row["ci_high"]
    # With four battles the intervals overlap: both models share rank 1.
    assert rows["Alpha"]["rank"] == rows["Beta"]["rank"] == 1
    assert "half a win" in board["note"]


def test_ties_count_half_a_win_and_filters_change_the_numbers(two_campaigns):
    # Campaign two alone: Beta 2 wins + 2 ties = 3 points, Alpha 1 point: Beta leads by 400 log10(3).
    benchmark_two = leaderboard(parse_filters({"benchmark": "two"}), rounds=ROUNDS)
    rows = rows_by_model(benchmark_two)
    assert rows["Beta"]["rating"] - rows["Alpha"]["rating"] == pytest.approx(GAP_3_TO_1, abs=0.01)
    assert (rows["Alpha"]["ties"], rows["Beta"]["ties"]) == (2, 2)
    # Everything: Alpha 3 + 1 = 4 points, Beta 1 + 2 + 1 = 4 points: equal ratings.
    everything = rows_by_model(leaderboard(parse_filters({}), rounds=ROUNDS))
    assert everything["Alpha"]["rating"] == pytest.approx(everything["Beta"]["rating"], abs=0.01)
    assert everything["Alpha"]["battles"] == 8
    # The pool of experts (ann1 and ann2 of benchmark one) sees only campaign one.
    experts = rows_by_model(leaderboard(parse_filters({"pool": "experts"}), rounds=ROUNDS))
    assert experts["Alpha"]["rating"] - experts["Beta"]["rating"] == pytest.approx(GAP_3_TO_1, abs=0.01)
    # A category: Animals of benchmark one holds prompts 1-3 (two Alpha wins): the battle counts are exact,
    # and the ratings are unbounded (see below).
    animals = two_campaigns["one"]["categories"][0]
    only_animals = rows_by_model(leaderboard(parse_filters({"category": str(animals.pk)}), rounds=ROUNDS))
    assert (only_animals["Alpha"]["wins"], only_animals["Alpha"]["battles"]) == (2, 2)


def test_a_model_that_won_every_battle_gets_no_rating_interval_or_rank(two_campaigns, admin_client):
    animals = two_campaigns["one"]["categories"][0]
    board = leaderboard(parse_filters({"category": str(animals.pk)}), rounds=ROUNDS)
    rows = rows_by_model(board)
    assert (rows["Alpha"]["status"], rows["Alpha"]["status_label"]) == (
        "unbounded_high",
        "unbounded: won every battle",
    )
    assert (rows["Beta"]["status"], rows["Beta"]["status_label"]) == (
        "unbounded_low",
        "unbounded: lost every battle",
    )
    for row in rows.values():
        assert (row["rating"], row["ci_low"], row["ci_high"], row["rank"]) == (None, None, None, None)
    assert board["unrated"]["unbounded_high"] == ["Alpha one"] and board["plots"] == []
    assert any(note.startswith("Alpha one: unbounded") for note in board["rating_notes"])
    api = admin_client.get("/api/leaderboard/", {"rounds": ROUNDS, "category": animals.pk}).json()
    assert {r["model"]: r["status"] for r in api["tables"][0]["rows"]} == {
        "Alpha one": "unbounded_high",
        "Beta one": "unbounded_low",
    }
    html = admin_client.get(
        "/metrics/leaderboard/", {"rounds": ROUNDS, "category": animals.pk}
    ).content.decode()
    assert "unbounded: won every battle" in html and "no finite rating" in html


def test_models_that_never_met_the_largest_group_are_not_comparable(two_campaigns):
    """Gamma and Delta battle only each other: they are not put on Alpha and Beta's scale or ranked."""
    one = two_campaigns["one"]
    gamma = VideoModel.objects.create(name="Gamma", version="one")
    delta = VideoModel.objects.create(name="Delta", version="one")
    campaign = Campaign.objects.create(name="Gamma vs Delta", kind="pairwise", benchmark=one["benchmark"])
    CampaignModel.objects.create(campaign=campaign, model=gamma, position=0)
    CampaignModel.objects.create(campaign=campaign, model=delta, position=1)
    for prompt, choice in ((1, "left"), (2, "right"), (3, "left")):
        Judgment.objects.create(
            campaign=campaign,
            annotator=one["people"]["ann1"],
            prompt=one["prompts"][prompt],
            choice=choice,
            left_model=gamma,
            right_model=delta,
            left_video=stored_video(gamma, one["prompts"][prompt]),
            right_video=stored_video(delta, one["prompts"][prompt]),
        )
    board = leaderboard(parse_filters({"benchmark": "one"}), rounds=ROUNDS)
    rows = rows_by_model(board)
    # Alpha and Beta have four battles to Gamma and Delta's three: theirs is the largest group.
    assert rows["Alpha"]["status"] == rows["Beta"]["status"] == "rated"
    assert rows["Alpha"]["rating"] - rows["Beta"]["rating"] == pytest.approx(GAP_3_TO_1, abs=0.01)
    assert rows["Alpha"]["rank"] == 1
    for name in ("Gamma", "Delta"):
        assert rows[name]["status"] == "not_comparable"
        assert (rows[name]["rating"], rows[name]["ci_low"], rows[name]["rank"]) == (None, None, None)
    assert (rows["Gamma"]["wins"], rows["Gamma"]["losses"]) == (2, 1)  # the counts stay
    assert board["unrated"]["not_comparable"] == ["Delta one", "Gamma one"]
    assert [r["model"] for r in board["tables"][0]["rows"]][:2] == ["Alpha one", "Beta one"]
    assert board["plots"][0]["data"][0]["x"] == ["Alpha one", "Beta one"]


def test_the_cached_counts_follow_the_pool_members_and_the_category_prompts(two_campaigns):
    experts = Group.objects.get(name="experts")
    pool = parse_filters({"pool": "experts"})
    assert rows_by_model(leaderboard(pool, rounds=ROUNDS))["Alpha"]["battles"] == 4
    # ann1 of campaign two joins the pool: its two answers there (Beta wins) count at once.
    experts.user_set.add(two_campaigns["two"]["people"]["ann1"])
    rows = rows_by_model(leaderboard(pool, rounds=ROUNDS))
    assert (rows["Alpha"]["battles"], rows["Beta"]["wins"]) == (6, 3)

    animals = two_campaigns["one"]["categories"][0]
    category = parse_filters({"category": str(animals.pk)})
    assert rows_by_model(leaderboard(category, rounds=ROUNDS))["Alpha"]["battles"] == 2
    # Prompt 4 (ann2: a win for Alpha) moves into Animals.
    Prompt.objects.filter(pk=two_campaigns["one"]["prompts"][4].pk).update(category=animals)
    assert rows_by_model(leaderboard(category, rounds=ROUNDS))["Alpha"]["battles"] == 3


def test_an_exclusion_lifted_shows_at_once(two_campaigns):
    filters = parse_filters({"campaign": "Campaign one"})
    assert rows_by_model(leaderboard(filters, rounds=ROUNDS))["Alpha"]["losses"] == 1
    AnnotatorExclusion.objects.all().delete()
    rows = rows_by_model(leaderboard(filters, rounds=ROUNDS))
    assert rows["Alpha"]["losses"] == 6  # ann3's five losses; the repeat still left out
    assert rows["Alpha"]["rating"] < rows["Beta"]["rating"]


def test_rubric_means_and_automatic_metrics_join_the_table(two_campaigns):
    one = two_campaigns["one"]
    build_rubric(one)
    settings = ScoreSettings.objects.create(key="clip-a", family="clip", label="ViT-B-32, 8 frames")
    for i, value in ((1, 0.30), (2, 0.20)):
        AutoScore.objects.create(
            video=one["videos"][("Alpha", i)],
            metric=AutoScore.Metric.CLIP_SCORE,
            settings=settings,
            value=value,
        )
    rows = rows_by_model(leaderboard(parse_filters({"benchmark": "one"}), rounds=ROUNDS))
    # Rubric means over the analysed scores (refused prompt 5 and the excluded annotator left out).
    assert rows["Alpha"]["instruction_following"] == pytest.approx(20 / 6)
    assert rows["Beta"]["aesthetic_appeal"] == pytest.approx(20 / 6)
    assert rows["Alpha"]["rubric_scores"] == 6
    assert rows["Alpha"]["clip_score"] == pytest.approx(0.25)
    assert rows["Beta"]["clip_score"] is None


def test_bad_filters_are_named():
    with pytest.raises(LeaderboardError, match="no benchmark with the slug 'nope'"):
        parse_filters({"benchmark": "nope"})
    with pytest.raises(LeaderboardError, match="no annotator pool"):
        parse_filters({"pool": "ghosts"})
    with pytest.raises(LeaderboardError, match="category must be a category id"):
        parse_filters({"category": "cats"})
    with pytest.raises(LeaderboardError, match="no campaign"):
        parse_filters({"campaign": "999999"})
    assert parse_filters({"pool": "all"}) == JudgmentFilters()


@pytest.mark.parametrize("value", ["²", "٣", "1²", "99999999999999999999999999"])
def test_digits_that_are_no_id_are_a_clear_400(admin_client, value):
    with pytest.raises(LeaderboardError, match="category must be a category id"):
        parse_filters({"category": value})
    with pytest.raises(LeaderboardError, match="no campaign with the id or name"):
        parse_filters({"campaign": value})
    for name in ("category", "campaign"):
        assert admin_client.get("/metrics/leaderboard/", {name: value}).status_code == 400
        assert admin_client.get("/api/leaderboard/", {name: value}).status_code == 400


def test_no_battles_gives_no_ratings(two_campaigns):
    Judgment.objects.all().delete()
    board = leaderboard(parse_filters({}), rounds=ROUNDS)
    assert board["battles"] == 0 and board["tables"][0]["rows"] == [] and board["plots"] == []


def test_the_page_runs_a_bounded_number_of_queries(
    admin_client, two_campaigns, django_assert_max_num_queries
):
    build_rubric(two_campaigns["one"])
    # Session and user (3), filters (1), scope (6 with a pool), fingerprint (3 index lookups), counts,
    # rubric means, models, automatic metrics (2), the filter form's choices (4): none grows with the
    # number of judgments.
    with django_assert_max_num_queries(23):
        response = admin_client.get("/metrics/leaderboard/", {"pool": "experts", "rounds": ROUNDS})
    assert response.status_code == 200
    for _ in range(3):
        paired_judgment(two_campaigns["one"], two_campaigns["first"], "ann1", 3, True, "win")
    with django_assert_max_num_queries(18):  # one more: the prompts the campaigns left out
        response = admin_client.get(
            "/api/leaderboard/", {"rounds": ROUNDS, "category": two_campaigns["one"]["categories"][0].pk}
        )
    assert response.status_code == 200
    alpha = next(r for r in response.json()["tables"][0]["rows"] if r["model"].startswith("Alpha"))
    assert alpha["wins"] == 5  # the three new answers count at once


def test_the_fingerprint_keying_cached_counts_moves_with_every_write(campaign_factory):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.assignment import next_assignment
    from annotation.judging import submit_answer
    from annotation.models import Judgment
    from metrics.human.judgments import judgments_fingerprint

    campaign = campaign_factory(n_prompts=2, n_annotators=1)
    person = campaign.annotators.get()
    start = timezone.now()
    empty = judgments_fingerprint()
    first = next_assignment(campaign, person, now=start)
    submit_answer(token=first.token, annotator=person, payload={"choice": "left"}, now=start)
    answered = judgments_fingerprint()
    submit_answer(
        token=first.token, annotator=person, payload={"choice": "right"}, now=start + timedelta(seconds=5)
    )
    revised = judgments_fingerprint()
    Judgment.objects.all().delete()
    deleted = judgments_fingerprint()
    assert len({empty, answered, revised}) == 3 and deleted != revised
