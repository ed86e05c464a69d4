"""The results of a campaign, from judgments whose tables are known by hand: Metric-1 (wins-ties-losses
per category and annotator, win rates, sign tests, intervals, per-prompt majorities), Metric-2 (sums, means,
Wilcoxon tests), A/B shares, agreement and position bias. Each case has a refused prompt, an excluded
annotator, a repeat, a problem-reported item and ties, and checks that they are left out and listed.

The builders here are shared with test_results_pages.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, wilcoxon

from annotation.models import (
    AnnotatorExclusion,
    Assignment,
    Campaign,
    CampaignModel,
    Item,
    Judgment,
    ProblemReport,
    RubricScore,
)
from generation.models import Benchmark, Category, Prompt, Refusal, Video, VideoModel
from metrics.human.judgments import load_campaign
from metrics.human.results import build_results, campaign_results, display_rows, find_table, format_value
from metrics.stats.pairwise import bootstrap_over_prompts
from metrics.stats.preference_share import preference_shares

pytestmark = pytest.mark.django_db

ROUNDS = 200


def stored_video(model: VideoModel, prompt: Prompt, seed: int = 0, noise_id: str = "") -> Video:
    """A library row only: the analyses never open the files."""
    name = f"{model.pk}-{prompt.pk}-{seed}"
    return Video.objects.create(
        model=model,
        prompt=prompt,
        seed=seed,
        noise_id=noise_id,
        source=Video.Source.IMPORT,
        content_sha256=name,
        original_file=f"originals/{name}.mp4",
        playable_file=f"videos/{name}.mp4",
        status=Video.Status.READY,
    )


def make_world(django_user_model, slug: str = "bench") -> dict:
    """A benchmark of six prompts in two categories (Animals: 1-3, Vehicles: 4-6), two models with a video
    for every prompt, and four annotators."""
    benchmark = Benchmark.objects.create(slug=slug, name=f"Bench {slug}", kind=Benchmark.Kind.GENERIC)
    animals = Category.objects.create(benchmark=benchmark, name="Animals", position=1)
    vehicles = Category.objects.create(benchmark=benchmark, name="Vehicles", position=2)
    prompts = {
        i: Prompt.objects.create(
            benchmark=benchmark,
            position=i,
            text=f"prompt text {i}",
            language="en",
            category=animals if i <= 3 else vehicles,
        )
        for i in range(1, 7)
    }
    alpha = VideoModel.objects.create(name="Alpha", version=slug)
    beta = VideoModel.objects.create(name="Beta", version=slug)
    videos = {(m.name, i): stored_video(m, p) for m in (alpha, beta) for i, p in prompts.items()}
    people = {
        name: django_user_model.objects.create_user(username=f"{name}-{slug}", password="pw-annotate-1")
        for name in ("ann1", "ann2", "ann3", "ann4")
    }
    return {
        "benchmark": benchmark,
        "prompts": prompts,
        "alpha": alpha,
        "beta": beta,
        "videos": videos,
        "people": people,
        "categories": (animals, vehicles),
    }


def make_campaign(world: dict, kind: str, name: str) -> Campaign:
    campaign = Campaign.objects.create(name=name, kind=kind, benchmark=world["benchmark"])
    CampaignModel.objects.create(campaign=campaign, model=world["alpha"], position=0)
    CampaignModel.objects.create(campaign=campaign, model=world["beta"], position=1)
    campaign.annotators.set(world["people"].values())
    return campaign


def paired_judgment(
    world: dict,
    campaign: Campaign,
    annotator: str,
    prompt: int,
    a_on_left: bool,
    outcome_for_a: str,
    **extra,
) -> Judgment:
    """A pairwise answer given from model A's side, stored as the annotator saw it."""
    a, b = world["alpha"], world["beta"]
    left, right = (a, b) if a_on_left else (b, a)
    if outcome_for_a == "tie":
        choice = "tie"
    else:
        a_won = outcome_for_a == "win"
        choice = "left" if a_won == a_on_left else "right"
    return Judgment.objects.create(
        campaign=campaign,
        annotator=world["people"][annotator],
        prompt=world["prompts"][prompt],
        choice=choice,
        left_model=left,
        right_model=right,
        left_video=world["videos"][(left.name, prompt)],
        right_video=world["videos"][(right.name, prompt)],
        **extra,
    )


# (annotator, prompt, A shown on the left, outcome for A): analysed answers
PAIRWISE_ANSWERS = [
    ("ann1", 1, True, "win"),
    ("ann1", 2, False, "tie"),
    ("ann1", 3, True, "loss"),
    ("ann1", 4, False, "win"),
    ("ann2", 1, False, "win"),
    ("ann2", 2, True, "win"),
    ("ann2", 3, False, "loss"),
    ("ann2", 4, True, "tie"),
]


def build_pairwise(world: dict, name: str = "Alpha vs Beta", kind: str = "pairwise") -> Campaign:
    """Analysed: the answers above. Left out: ann3 (excluded, 2 answers), a repeat of ann1, an imported
    answer on prompt 5 (refused by Beta), and ann1's answer on prompt 6, whose item ann2 reported broken."""
    campaign = make_campaign(world, kind, name)
    for annotator, prompt, a_on_left, outcome in PAIRWISE_ANSWERS:
        paired_judgment(world, campaign, annotator, prompt, a_on_left, outcome)
    paired_judgment(world, campaign, "ann3", 1, True, "loss")
    paired_judgment(world, campaign, "ann3", 2, False, "loss")
    AnnotatorExclusion.objects.create(
        campaign=campaign, annotator=world["people"]["ann3"], reason="failed the gold items"
    )
    paired_judgment(world, campaign, "ann1", 1, False, "loss", is_repeat=True)
    Refusal.objects.create(model=world["beta"], prompt=world["prompts"][5], reason="content policy")
    paired_judgment(world, campaign, "ann2", 5, True, "win", source=Judgment.Source.IMPORT)
    item = Item.objects.create(
        campaign=campaign, prompt=world["prompts"][6], position=6, required_judgments=2
    )
    paired_judgment(world, campaign, "ann1", 6, True, "win", item=item)
    assignment = Assignment.objects.create(
        campaign=campaign,
        item=item,
        annotator=world["people"]["ann2"],
        presentation=[0, 1],
        status=Assignment.Status.PROBLEM,
        expires_at=campaign.created_at,
    )
    ProblemReport.objects.create(assignment=assignment, kind="video_broken", note="black frames")
    return campaign


# annotator -> prompt -> model -> (instruction following, motion smoothness, physical plausibility, aesthetics)
RUBRIC_SCORES = {
    "ann1": {
        1: {"Alpha": (5, 4, 3, 4), "Beta": (4, 4, 2, 3)},
        2: {"Alpha": (3, 3, 3, 3), "Beta": (4, 3, 3, 2)},
        4: {"Alpha": (2, 5, 4, 4), "Beta": (2, 4, 4, 5)},
        5: {"Alpha": (5, 5, 5, 5), "Beta": (1, 1, 1, 1)},  # prompt 5: refused by Beta, left out
    },
    "ann2": {
        1: {"Alpha": (4, 4, 3, 5), "Beta": (4, 3, 3, 3)},
        2: {"Alpha": (3, 2, 4, 3), "Beta": (2, 3, 3, 3)},
        4: {"Alpha": (3, 5, 4, 4), "Beta": (3, 4, 3, 4)},
    },
    "ann3": {1: {"Alpha": (1, 1, 1, 1), "Beta": (5, 5, 5, 5)}},  # excluded
}


def build_rubric(world: dict, name: str = "Rubric Alpha Beta") -> Campaign:
    campaign = make_campaign(world, "rubric", name)
    for annotator, prompts in RUBRIC_SCORES.items():
        for prompt, per_model in prompts.items():
            judgment = Judgment.objects.create(
                campaign=campaign, annotator=world["people"][annotator], prompt=world["prompts"][prompt]
            )
            for shown, (model_name, scores) in enumerate(per_model.items()):
                RubricScore.objects.create(
                    judgment=judgment,
                    model=world["alpha"] if model_name == "Alpha" else world["beta"],
                    video=world["videos"][(model_name, prompt)],
                    shown_position=shown,
                    instruction_following=scores[0],
                    motion_smoothness=scores[1],
                    physical_plausibility=scores[2],
                    aesthetic_appeal=scores[3],
                )
    AnnotatorExclusion.objects.create(campaign=campaign, annotator=world["people"]["ann3"], reason="rushed")
    Refusal.objects.get_or_create(
        model=world["beta"], prompt=world["prompts"][5], defaults={"reason": "policy"}
    )
    return campaign


@pytest.fixture(autouse=True)
def empty_cache():
    """Results are cached under digests of the data; a test database rolled back reuses ids, so each test
    starts from an empty cache."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(django_user_model):
    return make_world(django_user_model)


def table_rows(results: dict, key: str, **match) -> list[dict]:
    return [row for row in find_table(results, key)["rows"] if all(row.get(k) == v for k, v in match.items())]


def one_row(results: dict, key: str, **match) -> dict:
    rows = table_rows(results, key, **match)
    assert len(rows) == 1, (key, match, rows)
    return rows[0]


# ------------------------------------------------------------------------------------------ loading


def test_loading_leaves_out_repeats_exclusions_problem_items_and_refused_prompts(world):
    campaign = build_pairwise(world)
    data = load_campaign(campaign)
    assert sorted((j.annotator, j.prompt.position) for j in data.paired) == sorted(
        (world["people"][a].username, p) for a, p, _, _ in PAIRWISE_ANSWERS
    )
    assert data.skipped.counts == {
        "excluded annotator": 2,
        "problem report on an item of the prompt": 1,
        "prompt refused by a compared model": 1,
        "repeat": 1,
    }
    assert data.skipped.excluded_annotators == [
        {"annotator": "ann3-bench", "reason": "failed the gold items", "judgments_skipped": 2}
    ]
    assert data.skipped.refused_prompts == [
        {
            "prompt": 5,
            "text": "prompt text 5",
            "refused_by": "Beta bench",
            "reason": "content policy",
            "judgments_skipped": 1,
        }
    ]
    assert data.skipped.problem_prompts == [
        {
            "prompt": 6,
            "text": "prompt text 6",
            "reason": "problem report on an item of the prompt",
            "reports": [{"item": 6, "problem": "video_broken", "note": "black frames"}],
            "judgments_skipped": 1,
        }
    ]
    # Sides are resolved: ann1 chose "right" on prompt 4 where A was on the right, a win for A.
    answer = next(j for j in data.paired if j.annotator == "ann1-bench" and j.prompt.position == 4)
    assert (answer.shown_choice, answer.canonical, answer.outcome_for_a) == ("right", "a", "win")


def test_the_fingerprint_changes_when_an_answer_changes(world):
    campaign = build_pairwise(world)
    before = load_campaign(campaign).fingerprint
    assert load_campaign(campaign).fingerprint == before
    judgment = Judgment.objects.filter(campaign=campaign, is_repeat=False).first()
    Judgment.objects.filter(pk=judgment.pk).update(choice="tie" if judgment.choice != "tie" else "left")
    assert load_campaign(campaign).fingerprint != before


# ------------------------------------------------------------------------------------------ Metric-1


def test_metric1_counts_per_category_and_annotator(world):
    results = build_results(load_campaign(build_pairwise(world)), rounds=ROUNDS)
    wide = {row["category"]: row for row in find_table(results, "metric1_wtl")["rows"]}
    ann1, ann2 = "annotator:ann1-bench", "annotator:ann2-bench"
    assert list(wide) == ["Overall", "Animals", "Vehicles"]
    assert (wide["Overall"][ann1], wide["Overall"][ann2], wide["Overall"]["annotator:Pooled"]) == (
        "2-1-1",
        "2-1-1",
        "4-2-2",
    )
    assert (wide["Animals"][ann1], wide["Animals"][ann2], wide["Animals"]["annotator:Pooled"]) == (
        "1-1-1",
        "2-0-1",
        "3-1-2",
    )
    assert (wide["Vehicles"][ann1], wide["Vehicles"][ann2], wide["Vehicles"]["annotator:Pooled"]) == (
        "1-0-0",
        "0-1-0",
        "1-1-0",
    )
    # The excluded annotator has no column.
    assert "annotator:ann3-bench" not in wide["Overall"]

    pooled = one_row(results, "metric1_rows", category="Overall", annotator="Pooled")
    assert (pooled["wins"], pooled["ties"], pooled["losses"], pooled["judgments"], pooled["prompts"]) == (
        4,
        2,
        2,
        8,
        4,
    )
    assert pooled["win_rate"] == pytest.approx(4 / 6)
    # Two-sided sign test of 4 wins against 2 losses: 2 * P(X >= 4), X ~ Bin(6, 1/2) = 2 * 22/64.
    assert pooled["sign_p"] == pytest.approx(44 / 64)
    assert one_row(results, "metric1_rows", category="Animals", annotator="Pooled")[
        "sign_p"
    ] == pytest.approx(1.0)
    # The interval is bootstrapped over prompts, each prompt carrying both annotators' answers.
    per_prompt = [(2, 0, 0), (1, 1, 0), (0, 0, 2), (1, 1, 0)]
    low, high = bootstrap_over_prompts(per_prompt, rounds=ROUNDS, seed=0, statistic="win_rate")
    assert (pooled["ci_low"], pooled["ci_high"]) == pytest.approx((low, high))
    assert low <= 4 / 6 <= high
    vehicles_ann2 = one_row(results, "metric1_rows", category="Vehicles", annotator="ann2-bench")
    assert vehicles_ann2["win_rate"] is None and vehicles_ann2["ci_low"] is None  # a tie only


def test_metric1_per_prompt_votes_and_majority(world):
    results = build_results(load_campaign(build_pairwise(world)), rounds=ROUNDS)
    rows = {row["prompt"]: row for row in find_table(results, "metric1_prompts")["rows"]}
    assert sorted(rows) == [1, 2, 3, 4]  # 5 refused, 6 problem-reported
    assert (rows[1]["annotator:ann1-bench"], rows[1]["annotator:ann2-bench"], rows[1]["majority"]) == (
        "win",
        "win",
        "win",
    )
    assert (rows[2]["annotator:ann1-bench"], rows[2]["annotator:ann2-bench"], rows[2]["majority"]) == (
        "tie",
        "win",
        "win",  # a win that nobody contradicted beats an equal number of ties (the one majority rule)
    )
    assert rows[3]["majority"] == "loss" and rows[3]["wtl"] == "0-0-2"
    assert rows[4]["wtl"] == "1-1-0" and rows[4]["category"] == "Vehicles"


def test_metric1_majority_per_prompt_row_with_its_own_sign_test(world):
    results = build_results(load_campaign(build_pairwise(world)), rounds=ROUNDS)
    # Per-prompt majorities: 1 win, 2 win (a win and a tie), 3 loss, 4 win (a win and a tie).
    majority = one_row(results, "metric1_rows", category="Overall", annotator="Majority per prompt")
    assert (majority["wtl"], majority["prompts"], majority["judgments"]) == ("3-0-1", 4, 8)
    assert majority["win_rate"] == pytest.approx(0.75)
    assert majority["sign_p"] == pytest.approx(binomtest(3, 4, 0.5).pvalue)
    low, high = bootstrap_over_prompts(
        [(1, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 0)], rounds=ROUNDS, seed=0, statistic="win_rate"
    )
    assert (majority["ci_low"], majority["ci_high"]) == pytest.approx((low, high))
    assert (
        one_row(results, "metric1_rows", category="Animals", annotator="Majority per prompt")["wtl"]
        == "2-0-1"
    )
    wide = {row["category"]: row for row in find_table(results, "metric1_wtl")["rows"]}
    assert wide["Vehicles"]["annotator:Majority per prompt"] == "1-0-0"
    # Why the pooled sign test is optimistic is said once, in the results' notes, not again by the table.
    assert find_table(results, "metric1_rows")["note"] == ""
    (note,) = [n for n in results["notes"] if "p-value is optimistic" in n]
    assert "counts each annotator's judgment separately" in note and "resamples prompts" in note


# ------------------------------------------------------------------------------------------ agreement


def test_agreement_on_the_canonical_preference(world):
    results = build_results(load_campaign(build_pairwise(world)), rounds=ROUNDS)
    overall = one_row(results, "agreement", category="Overall")
    # Units p1..p4: ann1 says A, tie, B, A; ann2 says A, A, B, tie (hand-computed coincidence matrix:
    # D_o = 4/8, D_e = 40/56, alpha = 0.3; Fleiss: P = 0.5, P_e = 0.375, kappa = 0.2).
    assert overall["units"] == 4
    assert overall["alpha"] == pytest.approx(0.3)
    assert overall["kappa"] == pytest.approx(0.2)
    assert (overall["kappa_units"], overall["raters"]) == (4, 2)
    animals = one_row(results, "agreement", category="Animals")
    assert animals["alpha"] == pytest.approx(12 / 22)
    assert animals["kappa"] == pytest.approx((2 / 3 - 7 / 18) / (1 - 7 / 18))
    vehicles = one_row(results, "agreement", category="Vehicles")
    assert vehicles["alpha"] == pytest.approx(0.0) and vehicles["kappa"] == pytest.approx(-1.0)
    pair = one_row(results, "agreement_pairs", annotator_1="ann1-bench")
    assert (pair["annotator_2"], pair["agreement"], pair["common"]) == ("ann2-bench", 0.5, 4)
    matrix = one_row(results, "agreement_matrix", annotator="ann1-bench")
    assert matrix["annotator:ann1-bench"] == 1.0 and matrix["annotator:ann2-bench"] == 0.5


def test_position_bias_uses_the_side_shown(world):
    results = build_results(load_campaign(build_pairwise(world)), rounds=ROUNDS)
    ann1 = one_row(results, "position_bias", annotator="ann1-bench")
    assert (ann1["answers"], ann1["left"], ann1["tie"], ann1["right"]) == (4, 0.25, 0.25, 0.5)
    ann2 = one_row(results, "position_bias", annotator="ann2-bench")
    assert (ann2["left"], ann2["tie"], ann2["right"]) == (0.5, 0.25, 0.25)
    everyone = one_row(results, "position_bias", annotator="All annotators")
    assert (everyone["answers"], everyone["left"], everyone["right"], everyone["p"]) == (8, 0.375, 0.375, 1.0)


# ------------------------------------------------------------------------------------------ Metric-2


def test_metric2_sums_and_means_leave_out_the_refused_prompt_and_the_excluded_annotator(world):
    results = build_results(load_campaign(build_rubric(world)), rounds=ROUNDS)
    sums = {row["category"]: row for row in find_table(results, "metric2_sums")["rows"]}
    dims = ("instruction_following", "motion_smoothness", "physical_plausibility", "aesthetic_appeal")
    assert [sums["Overall"][d] for d in dims] == ["20-19", "23-21", "21-18", "23-20"]
    assert [sums["Animals"][d] for d in dims] == ["15-14", "13-13", "13-11", "15-11"]
    assert [sums["Vehicles"][d] for d in dims] == ["5-5", "10-8", "8-7", "8-9"]
    alpha_if = one_row(
        results,
        "metric2_by_category",
        category="Overall",
        dimension="Instruction following",
        model="Alpha bench",
    )
    assert (alpha_if["sum"], alpha_if["n"], alpha_if["mean"]) == (20, 6, pytest.approx(20 / 6))
    by_annotator = {row["annotator"]: row for row in find_table(results, "metric2_annotator_sums")["rows"]}
    assert sorted(by_annotator) == ["ann1-bench", "ann2-bench"]
    assert [by_annotator["ann1-bench"][d] for d in dims] == ["10-10", "12-11", "10-9", "11-10"]
    assert [by_annotator["ann2-bench"][d] for d in dims] == ["10-9", "11-10", "11-9", "12-10"]
    beta_aa = one_row(
        results,
        "metric2_by_annotator",
        annotator="ann2-bench",
        model="Beta bench",
        dimension="Aesthetic appeal",
    )
    assert (beta_aa["sum"], beta_aa["mean"], beta_aa["n"]) == (10, pytest.approx(10 / 3), 3)
    assert results["skipped"]["refused_prompts"][0]["prompt"] == 5
    assert results["skipped"]["refused_prompts"][0]["judgments_skipped"] == 1


def rubric_items(world: dict, campaign: Campaign, prompts: list[int]) -> dict[tuple[str, int], Item]:
    """One item per (model, prompt): a rubric campaign shown one video at a time."""
    items = {}
    for prompt in prompts:
        for model_name in ("Alpha", "Beta"):
            item = Item.objects.create(
                campaign=campaign,
                prompt=world["prompts"][prompt],
                position=len(items) + 1,
                required_judgments=2,
            )
            items[(model_name, prompt)] = item
    return items


def score_item(world: dict, item: Item, model_name: str, annotator: str, value: int) -> None:
    judgment = Judgment.objects.create(
        campaign=item.campaign, item=item, annotator=world["people"][annotator], prompt=item.prompt
    )
    RubricScore.objects.create(
        judgment=judgment,
        model=world["alpha"] if model_name == "Alpha" else world["beta"],
        video=world["videos"][(model_name, item.prompt.position)],
        instruction_following=value,
        motion_smoothness=value,
        physical_plausibility=value,
        aesthetic_appeal=value,
    )


def report_problem(world: dict, item: Item, annotator: str, note: str = "") -> None:
    assignment = Assignment.objects.create(
        campaign=item.campaign,
        item=item,
        annotator=world["people"][annotator],
        presentation=[0],
        status=Assignment.Status.PROBLEM,
        expires_at=item.campaign.created_at,
    )
    ProblemReport.objects.create(assignment=assignment, kind="video_broken", note=note)


def test_metric2_a_problem_report_drops_the_prompt_for_every_model(world):
    """One video at a time, every score 3, prompts 1, 2 and 4: a problem report on Alpha's video for prompt 1
    leaves prompt 1 out for Beta too, so the sums stay equal (not 12-18)."""
    campaign = make_campaign(world, "rubric", "One at a time")
    items = rubric_items(world, campaign, [1, 2, 4])
    for (model_name, _), item in items.items():
        for annotator in ("ann1", "ann2"):
            score_item(world, item, model_name, annotator, 3)
    report_problem(world, items[("Alpha", 1)], "ann3", note="no picture")
    results = build_results(load_campaign(campaign), rounds=ROUNDS)
    overall = one_row(results, "metric2_sums", category="Overall")
    assert (overall["instruction_following"], overall["prompts"]) == ("12-12", 2)
    assert one_row(results, "metric2_sums", category="Animals")["aesthetic_appeal"] == "6-6"
    ann1 = one_row(results, "metric2_annotator_sums", annotator="ann1-bench")
    assert (ann1["motion_smoothness"], ann1["prompts"]) == ("6-6", 2)
    assert results["skipped"]["problem_prompts"] == [
        {
            "prompt": 1,
            "text": "prompt text 1",
            "reason": "problem report on an item of the prompt",
            "reports": [{"item": 1, "problem": "video_broken", "note": "no picture"}],
            "judgments_skipped": 4,  # both annotators' scores of both models' videos
        }
    ]
    assert results["skipped"]["judgments_skipped"] == {"problem report on an item of the prompt": 4}


def test_metric2_compares_models_only_where_they_are_scored_alike(world):
    """k per item, unfinished: on prompt 2 Beta's video has one score of two, on prompt 4 Beta's video has
    none yet. Table 8 counts prompt 1 only; in Table 11, ann1 (who scored both videos of prompts 1 and 2)
    counts both, ann2 only prompt 1."""
    campaign = make_campaign(world, "rubric", "Unfinished")
    items = rubric_items(world, campaign, [1, 2, 4])
    scores = {("Alpha", 1): 4, ("Beta", 1): 2, ("Alpha", 2): 5, ("Beta", 2): 1, ("Alpha", 4): 5}
    for (model_name, prompt), value in scores.items():
        score_item(world, items[(model_name, prompt)], model_name, "ann1", value)
        if (model_name, prompt) != ("Beta", 2):
            score_item(world, items[(model_name, prompt)], model_name, "ann2", value)
    results = build_results(load_campaign(campaign), rounds=ROUNDS)
    overall = one_row(results, "metric2_sums", category="Overall")
    assert (overall["instruction_following"], overall["prompts"]) == ("8-4", 1)
    assert [row["category"] for row in find_table(results, "metric2_sums")["rows"]] == ["Overall", "Animals"]
    alpha_mean = one_row(
        results, "metric2_by_category", category="Overall", dimension="Aesthetic appeal", model="Alpha bench"
    )
    assert (alpha_mean["sum"], alpha_mean["n"], alpha_mean["mean"]) == (8, 2, 4.0)
    ann1 = one_row(results, "metric2_annotator_sums", annotator="ann1-bench")
    ann2 = one_row(results, "metric2_annotator_sums", annotator="ann2-bench")
    assert (ann1["instruction_following"], ann1["prompts"]) == ("9-3", 2)
    assert (ann2["instruction_following"], ann2["prompts"]) == ("4-2", 1)
    motion = one_row(results, "metric2_tests", dimension="Motion smoothness")
    assert (motion["prompts"], motion["mean_1"], motion["mean_2"]) == (1, 4.0, 2.0)
    assert results["skipped"]["metric2_prompts_left_out"] == [
        {
            "prompt": 2,
            "text": "prompt text 2",
            "category": "Animals",
            "scores": "Alpha bench: 2, Beta bench: 1",
            "reason": "the compared models have unequal numbers of scores on it (coverage unfinished)",
        },
        {
            "prompt": 4,
            "text": "prompt text 4",
            "category": "Vehicles",
            "scores": "Alpha bench: 2, Beta bench: 0",
            "reason": "not every compared model has a score on it yet",
        },
    ]
    assert "same number" in " ".join(results["notes"])


def test_metric2_wilcoxon_on_per_prompt_means(world):
    results = build_results(load_campaign(build_rubric(world)), rounds=ROUNDS)
    # Per-prompt means across ann1 and ann2 (prompts 1, 2, 4), Alpha then Beta.
    motion = one_row(results, "metric2_tests", dimension="Motion smoothness")
    alpha, beta = [4.0, 2.5, 5.0], [3.5, 3.0, 4.0]
    expected = wilcoxon(np.subtract(alpha, beta))
    assert (motion["model_1"], motion["model_2"], motion["prompts"], motion["nonzero"]) == (
        "Alpha bench",
        "Beta bench",
        3,
        3,
    )
    assert motion["statistic"] == pytest.approx(expected.statistic)
    assert motion["p"] == pytest.approx(expected.pvalue)
    assert motion["mean_1"] == pytest.approx(np.mean(alpha)) and motion["mean_2"] == pytest.approx(
        np.mean(beta)
    )
    instruction = one_row(results, "metric2_tests", dimension="Instruction following")
    # Differences 0.5, 0, 0: one non-zero difference, nothing significant.
    assert (instruction["nonzero"], instruction["p"]) == (1, 1.0)


def test_rubric_agreement_matrix_counts_scores_given_alike(world):
    results = build_results(load_campaign(build_rubric(world)), rounds=ROUNDS)
    pair = one_row(results, "rubric_agreement_pairs", annotator_1="ann1-bench")
    # 6 videos x 4 dimensions; hand count of equal scores: 2 + 2 + 2 + 2 + 3 + 1.
    assert (pair["common"], pair["agreement"]) == (24, 0.5)
    instruction = one_row(results, "rubric_agreement", category="Overall", dimension="Instruction following")
    assert instruction["units"] == 6 and instruction["raters"] == 2
    assert -1.0 <= instruction["alpha"] <= 1.0


# ------------------------------------------------------------------------------------------ A/B shares


def test_ab_shares_count_no_preference_as_half_a_point(world):
    campaign = build_pairwise(world, name="DPO vs baseline", kind="ab_shared_noise")
    results = build_results(load_campaign(campaign), rounds=ROUNDS)
    # Pooled: 4 wins, 2 ties, 2 losses of A: A has 4 + 1 = 5 points of 8.
    share_a = one_row(results, "ab_shares", category="Overall", model="Alpha bench (A)")
    share_b = one_row(results, "ab_shares", category="Overall", model="Beta bench (B)")
    assert (share_a["points"], share_a["share"], share_b["points"], share_b["share"]) == (
        5.0,
        62.5,
        3.0,
        37.5,
    )
    reference = preference_shares(
        [(1, "a"), (1, "a"), (2, "none"), (2, "a"), (3, "b"), (3, "b"), (4, "a"), (4, "none")], rounds=ROUNDS
    )
    assert (share_a["ci_low"], share_a["ci_high"]) == pytest.approx(reference.ci_a)
    assert (share_b["ci_low"], share_b["ci_high"]) == pytest.approx(reference.ci_b)
    vehicles = one_row(results, "ab_shares", category="Vehicles", model="Alpha bench (A)")
    assert vehicles["share"] == 75.0  # prompt 4: a win and a tie


# ------------------------------------------------------------------------------------------ caching and display


def test_cached_results_follow_the_data(world):
    campaign = build_pairwise(world)
    first = campaign_results(campaign, rounds=ROUNDS)
    assert one_row(first, "metric1_rows", category="Overall", annotator="Pooled")["wtl"] == "4-2-2"
    AnnotatorExclusion.objects.filter(campaign=campaign).delete()
    second = campaign_results(campaign, rounds=ROUNDS)
    # ann3's two losses now count.
    assert one_row(second, "metric1_rows", category="Overall", annotator="Pooled")["wtl"] == "4-2-4"
    assert second["skipped"]["excluded_annotators"] == []


def test_display_formats(world):
    assert format_value(1273, "int") == "1,273"
    assert format_value(0.666666, "float") == "0.667"
    assert format_value(62.5, "pct") == "62.5%"
    assert format_value(0.00001, "p") == "<0.0001"
    assert format_value(None, "float") == "—"
    results = build_results(load_campaign(build_pairwise(world)), rounds=ROUNDS)
    shown = display_rows(find_table(results, "metric1_rows"))
    assert ["Overall", "Pooled", "4", "2", "2", "4-2-2", "8", "4", "0.667"] == shown[2][:9]
    assert shown[2][11] == "0.6875"


def test_an_empty_campaign_has_no_tables_and_says_so(world):
    campaign = make_campaign(world, "pairwise", "Nothing yet")
    results = build_results(load_campaign(campaign), rounds=ROUNDS)
    assert results["tables"] == [] and results["judgments_analysed"] == 0
    assert "No analysable judgment yet." in results["notes"]


def test_seed_preference_agreement_is_on_the_videos_not_the_sides(world):
    alpha = world["alpha"]
    campaign = Campaign.objects.create(name="Seeds", kind="seed_preference", benchmark=world["benchmark"])
    CampaignModel.objects.create(campaign=campaign, model=alpha, position=0)
    second_seed = {i: stored_video(alpha, world["prompts"][i], seed=1) for i in (1, 2)}

    def answer(annotator: str, prompt: int, first_on_left: bool, choice: str) -> None:
        first, second = world["videos"][("Alpha", prompt)], second_seed[prompt]
        left, right = (first, second) if first_on_left else (second, first)
        Judgment.objects.create(
            campaign=campaign,
            annotator=world["people"][annotator],
            prompt=world["prompts"][prompt],
            choice=choice,
            left_model=alpha,
            right_model=alpha,
            left_video=left,
            right_video=right,
        )

    # Both prefer the first seed's video on prompt 1, seen on opposite sides; both see no difference on 2.
    answer("ann1", 1, True, "left")
    answer("ann2", 1, False, "right")
    answer("ann1", 2, True, "tie")
    answer("ann2", 2, False, "tie")
    results = build_results(load_campaign(campaign), rounds=ROUNDS)
    assert [t["key"] for t in results["tables"]][:2] == ["seed_preference_summary", "agreement"]
    pair = one_row(results, "agreement_pairs", annotator_1="ann1-bench")
    assert (pair["agreement"], pair["common"]) == (1.0, 2)
    assert one_row(results, "agreement", category="Overall")["alpha"] == pytest.approx(1.0)
    ann1 = one_row(results, "position_bias", annotator="ann1-bench")
    ann2 = one_row(results, "position_bias", annotator="ann2-bench")
    assert (ann1["left"], ann1["right"], ann2["left"], ann2["right"]) == (0.5, 0.0, 0.0, 0.5)
    summary = one_row(results, "seed_preference_summary", annotator="All annotators")
    assert (summary["judgments"], summary["decisive"], summary["ties"], summary["pairs"]) == (4, 2, 2, 2)
