"""Importing judgments from CSV: the pairwise and score formats, every problem reported by line with
nothing stored, idempotent re-imports, inactive accounts for unknown annotators, the command and the API."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotation.campaigns import CampaignSpec, create_campaign
from annotation.importing import JudgmentImportError, find_campaign, import_judgments
from annotation.models import ExcludedPrompt, Judgment, RubricScore
from generation.models import Category
from metrics.human.judgments import load_campaign

pytestmark = pytest.mark.django_db

PAIRWISE_HEADER = "prompt,annotator,left_model,right_model,choice"
SCORES_HEADER = (
    "prompt,model,annotator,instruction_following,motion_smoothness,physical_plausibility,aesthetic_appeal"
)


def csv_text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


@pytest.fixture
def pairwise(campaign_factory):
    campaign = campaign_factory("pairwise", n_prompts=3, n_annotators=1)
    alpha, beta = [entry.model for entry in campaign.campaign_models.order_by("position")]
    return campaign, alpha, beta


def test_a_good_pairwise_file_is_imported_with_videos_and_new_inactive_annotators(pairwise):
    campaign, alpha, beta = pairwise
    existing = campaign.annotators.get()
    second_text = campaign.benchmark.prompts.get(position=2).text
    data = csv_text(
        "Prompt, Annotator ,left_model,right_model,CHOICE",
        f"1,{existing.username},{alpha},{beta},left",
        f'"{second_text}",outsider,{beta.name}:{beta.version},{alpha.name},Tie',
        "",
        "3,outsider,Beta,Alpha,RIGHT",
    )
    report = import_judgments(campaign, data.encode())
    assert report.ok, report.errors
    assert (report.rows, report.imported, report.duplicates) == (3, 3, 0)
    assert report.created_annotators == ["outsider"]
    outsider = get_user_model().objects.get(username="outsider")
    assert not outsider.is_active and not outsider.has_usable_password()
    rows = list(Judgment.objects.filter(campaign=campaign).order_by("prompt__position"))
    assert [(j.prompt.position, j.left_model, j.right_model, j.choice) for j in rows] == [
        (1, alpha, beta, "left"),
        (2, beta, alpha, "tie"),
        (3, beta, alpha, "right"),
    ]
    assert all(j.source == "import" and j.item is None and j.assignment is None for j in rows)
    first = rows[0]
    assert first.left_video == alpha.videos.get(prompt=first.prompt)
    assert first.right_video == beta.videos.get(prompt=first.prompt)
    assert rows[2].outcome_for(alpha.pk) == "win"
    assert not campaign.annotators.filter(username="outsider").exists()


def test_every_problem_is_reported_by_line_and_nothing_is_stored(pairwise):
    campaign, alpha, beta = pairwise
    users_before = get_user_model().objects.count()
    data = csv_text(
        PAIRWISE_HEADER,
        f"1,newcomer,{alpha},{beta},left",  # good, but not stored: other rows are bad
        f"9,ann,{alpha},{beta},left",
        f"2,ann,Gamma,{beta},left",
        f"2,ann,{alpha},{beta},left better",
        f"3,ann,{alpha},{alpha},right",
        "a prompt nobody wrote,ann,Alpha,Beta,tie",
        "1,ann,Alpha,Beta",
        f"1,bad name!,{alpha},{beta},tie",
    )
    report = import_judgments(campaign, data)
    assert not report.ok
    found = [(e.line, e.message) for e in report.errors]
    assert [line for line, _ in found] == [3, 4, 5, 6, 7, 8, 9]
    messages = dict(found)
    assert "no prompt at position 9" in messages[3]
    assert "'Gamma' is not a model of this campaign" in messages[4] and str(alpha) in messages[4]
    assert "'left better' is not one of left, tie, right" in messages[5]
    assert "same model" in messages[6]
    assert "no prompt of benchmark" in messages[7]
    assert "expected 5 fields, found 4" in messages[8]
    assert "not a valid username" in messages[9]
    assert Judgment.objects.count() == 0
    assert get_user_model().objects.count() == users_before
    assert report.summary() == "7 problem(s) found; nothing was imported."


def test_reimporting_the_same_file_adds_nothing(pairwise):
    campaign, alpha, beta = pairwise
    rows = [f"1,rater,{alpha},{beta},left", f"1,rater,{alpha},{beta},left", f"2,rater,{alpha},{beta},tie"]
    first = import_judgments(campaign, csv_text(PAIRWISE_HEADER, *rows))
    assert (first.imported, first.duplicates) == (3, 0)  # two identical rows are two judgments
    again = import_judgments(campaign, csv_text(PAIRWISE_HEADER, *rows))
    assert (again.imported, again.duplicates, again.created_annotators) == (0, 3, [])
    assert "3 row(s) skipped as already imported" in again.summary()
    grown = import_judgments(campaign, csv_text(PAIRWISE_HEADER, *rows, f"3,rater,{beta},{alpha},right"))
    assert (grown.imported, grown.duplicates) == (1, 3)
    assert Judgment.objects.filter(campaign=campaign).count() == 4


def test_a_dry_run_checks_and_stores_nothing(pairwise):
    campaign, alpha, beta = pairwise
    report = import_judgments(
        campaign, csv_text(PAIRWISE_HEADER, f"1,someone,{alpha},{beta},left"), dry_run=True
    )
    assert report.ok and report.imported == 1 and report.created_annotators == ["someone"]
    assert report.summary().startswith("Would import 1 judgment(s)")
    assert Judgment.objects.count() == 0
    assert not get_user_model().objects.filter(username="someone").exists()


def test_the_header_must_match_the_campaign_kind(pairwise):
    campaign, *_ = pairwise
    report = import_judgments(campaign, csv_text(SCORES_HEADER, "1,Alpha,ann,3,3,3,3"))
    ((line, message),) = [(e.line, e.message) for e in report.errors]
    assert line == 1
    assert "missing column(s) left_model, right_model, choice" in message
    assert "unexpected column(s) model, instruction_following" in message
    assert f"takes the columns {PAIRWISE_HEADER.replace(',', ', ')}" in message
    assert not import_judgments(campaign, "").ok
    assert "no rows" in import_judgments(campaign, PAIRWISE_HEADER + "\n").errors[0].message
    assert "not UTF-8" in import_judgments(campaign, b"prompt,\xff\xfe\n").errors[0].message


def test_excel_bom_and_crlf_line_ends_are_accepted(pairwise):
    campaign, alpha, beta = pairwise
    data = ("\ufeff" + PAIRWISE_HEADER + "\r\n" + f"1,ann,{alpha},{beta},right\r\n").encode("utf-8")
    report = import_judgments(campaign, data)
    assert report.ok and report.imported == 1


def test_score_rows_for_a_rubric_campaign(campaign_factory):
    campaign = campaign_factory("rubric", n_prompts=2, n_annotators=1, seeds=2)
    alpha, beta = [entry.model for entry in campaign.campaign_models.order_by("position")]
    good = csv_text(SCORES_HEADER, f"1,{alpha},rater,5,4,3,2", f"1,{beta.name},rater,1,1,1,1")
    report = import_judgments(campaign, good)
    assert report.ok and report.imported == 2 and report.format == "scores"
    scores = RubricScore.objects.filter(judgment__campaign=campaign).order_by("model__name")
    assert [(s.model, s.instruction_following, s.aesthetic_appeal) for s in scores] == [
        (alpha, 5, 2),
        (beta, 1, 1),
    ]
    assert all(s.video is None for s in scores)  # two ready seeds per model: which one is unknown
    assert all(s.judgment.choice == "" and s.judgment.source == "import" for s in scores)
    assert import_judgments(campaign, good).duplicates == 2
    bad = import_judgments(
        campaign, csv_text(SCORES_HEADER, f"2,{alpha},rater,0,6,3.5,", f"2,{alpha},rater,3,3,3,3")
    )
    assert [e.line for e in bad.errors] == [2, 2, 2, 2]
    assert "instruction_following: '0' is not a whole number from 1 to 5" in bad.errors[0].message
    assert RubricScore.objects.filter(judgment__campaign=campaign).count() == 2


def test_seed_preference_rows_name_the_one_model_twice(campaign_factory):
    campaign = campaign_factory("seed_preference", n_prompts=1, n_annotators=1)
    (model,) = [entry.model for entry in campaign.campaign_models.all()]
    report = import_judgments(campaign, csv_text(PAIRWISE_HEADER, f"1,rater,{model},{model},left"))
    assert report.ok and report.imported == 1
    judgment = Judgment.objects.get(campaign=campaign)
    assert judgment.left_video is None and judgment.right_video is None  # three seeds: not one video


def test_the_command_imports_checks_and_refuses(pairwise, tmp_path, capsys):
    campaign, alpha, beta = pairwise
    good = tmp_path / "good.csv"
    good.write_text(csv_text(PAIRWISE_HEADER, f"1,rater,{alpha},{beta},left"), encoding="utf-8")
    call_command("import_judgments", str(good), "--campaign", campaign.name, "--dry-run")
    assert "Would import 1" in capsys.readouterr().out and Judgment.objects.count() == 0
    call_command("import_judgments", str(good), "--campaign", str(campaign.pk))
    assert "Imported 1 judgment(s)" in capsys.readouterr().out and Judgment.objects.count() == 1
    call_command("import_judgments", str(good), "--campaign", campaign.name)
    assert "1 row(s) skipped" in capsys.readouterr().out and Judgment.objects.count() == 1
    bad = tmp_path / "bad.csv"
    bad.write_text(
        csv_text(PAIRWISE_HEADER, f"1,rater,{alpha},{beta},maybe", "7,rater,Alpha,Beta,tie"), encoding="utf-8"
    )
    with pytest.raises(CommandError, match="2 problem"):
        call_command("import_judgments", str(bad), "--campaign", campaign.name)
    err = capsys.readouterr().err
    assert "line 2: choice: 'maybe'" in err and "line 3:" in err
    with pytest.raises(CommandError, match="no campaign has the name or id 'nope'"):
        call_command("import_judgments", str(good), "--campaign", "nope")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_judgments", str(tmp_path / "missing.csv"), "--campaign", campaign.name)
    assert Judgment.objects.count() == 1


def test_the_api_imports_and_reports_problems(pairwise, client, django_user_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    campaign, alpha, beta = pairwise
    url = f"/api/campaigns/{campaign.pk}/import-judgments/"
    manager = django_user_model.objects.create_user("boss", password="pw-boss-12345", is_staff=True)
    client.force_login(manager)

    def upload(text, **extra):
        return client.post(url, {"file": SimpleUploadedFile("j.csv", text.encode()), **extra})

    response = upload(csv_text(PAIRWISE_HEADER, f"1,rater,{alpha},{beta},left"), dry_run="true")
    assert response.status_code == 200 and response.json()["imported"] == 1 and Judgment.objects.count() == 0
    response = upload(csv_text(PAIRWISE_HEADER, f"1,rater,{alpha},{beta},left"))
    body = response.json()
    assert response.status_code == 200 and body["ok"] and body["created_annotators"] == ["rater"]
    response = upload(csv_text(PAIRWISE_HEADER, "1,rater,Nobody,Beta,left", "2,rater,Alpha,Beta,sideways"))
    assert response.status_code == 400
    assert [e["line"] for e in response.json()["errors"]] == [2, 3]
    assert Judgment.objects.count() == 1
    assert client.post(url, {}).status_code == 400  # no file
    annotator = campaign.annotators.get()
    client.force_login(annotator)
    assert upload(csv_text(PAIRWISE_HEADER, f"1,rater,{alpha},{beta},left")).status_code == 403
    assert Judgment.objects.count() == 1


def test_digits_that_are_not_whole_numbers_are_reported_by_line(pairwise, campaign_factory):
    campaign, alpha, beta = pairwise
    report = import_judgments(
        campaign, csv_text(PAIRWISE_HEADER, f"²,rater,{alpha},{beta},left", f"1,rater,{alpha},{beta},left")
    )
    assert [str(e) for e in report.errors] == [
        f"line 2: no prompt of benchmark {campaign.benchmark.slug!r} has the text '²'"
    ]
    rubric = campaign_factory("rubric", n_prompts=1, n_annotators=1, model_names=("Gamma",))
    (gamma,) = [entry.model for entry in rubric.campaign_models.all()]
    report = import_judgments(
        rubric, csv_text(SCORES_HEADER, f"1,{gamma},rater,²,3,3,3", f"1,{gamma},r2,3,3,3,3")
    )
    assert [str(e) for e in report.errors] == [
        "line 2: instruction_following: '²' is not a whole number from 1 to 5"
    ]
    assert not Judgment.objects.exists()
    with pytest.raises(JudgmentImportError, match="no campaign has the name or id '²'"):
        find_campaign("²")
    assert find_campaign(f" {campaign.pk} ") == campaign


def test_prompts_outside_the_campaigns_categories_are_reported_by_line(library, annotators):
    benchmark, (alpha, beta) = library(["a cat sleeps", "a dog runs", "a ball is kicked"])
    animals = Category.objects.create(benchmark=benchmark, name="animals", position=1)
    sports = Category.objects.create(benchmark=benchmark, name="sports", position=2)
    benchmark.prompts.filter(position__in=[1, 2]).update(category=animals)
    benchmark.prompts.filter(position=3).update(category=sports)
    spec = CampaignSpec(
        name="animals only", kind="pairwise", benchmark=benchmark, models=[alpha, beta], categories=[animals]
    )
    campaign = create_campaign(spec)
    assert campaign.items.count() == 2

    report = import_judgments(
        campaign,
        csv_text(
            PAIRWISE_HEADER,
            f"1,rater,{alpha},{beta},left",
            f"3,rater,{alpha},{beta},left",
            f"a ball is kicked,rater,{alpha},{beta},tie",
            f"a dog runs,rater,{alpha},{beta},right",
        ),
    )
    assert [str(e) for e in report.errors] == [
        "line 3: prompt 3 is not in this campaign's categories",
        "line 4: prompt 3 is not in this campaign's categories",
    ]
    assert report.imported == 0 and not Judgment.objects.exists()

    good = csv_text(PAIRWISE_HEADER, f"1,rater,{alpha},{beta},left", f"a dog runs,rater,{alpha},{beta},right")
    assert import_judgments(campaign, good).imported == 2
    every_category = create_campaign(
        CampaignSpec(name="every category", kind="pairwise", benchmark=benchmark, models=[alpha, beta])
    )
    assert import_judgments(every_category, csv_text(PAIRWISE_HEADER, f"3,rater,{alpha},{beta},tie")).ok


def test_prompts_the_campaign_left_out_are_refused_by_line_and_nothing_is_stored(pairwise, tmp_path):
    campaign, alpha, beta = pairwise
    prompt = campaign.benchmark.prompts.get(position=3)
    ExcludedPrompt.objects.create(
        campaign=campaign, prompt=prompt, model=beta, reason=ExcludedPrompt.Reason.NO_VIDEO
    )
    data = csv_text(PAIRWISE_HEADER, f"1,ann,{alpha},{beta},left", f"{prompt.text},ann,{alpha},{beta},tie")
    report = import_judgments(campaign, data)
    assert [(e.line, e.message) for e in report.errors] == [
        (
            3,
            f"prompt 3 was left out of this campaign (no ready video of {beta}); a judgment of it would not count",
        )
    ]
    assert Judgment.objects.count() == 0
    bad = tmp_path / "left-out.csv"
    bad.write_text(csv_text(PAIRWISE_HEADER, f"3,ann,{alpha},{beta},left"), encoding="utf-8")
    with pytest.raises(CommandError, match="1 problem"):
        call_command("import_judgments", str(bad), "--campaign", campaign.name)
    assert Judgment.objects.count() == 0


def test_a_judgment_of_a_left_out_prompt_is_listed_as_left_out_and_never_counted(pairwise):
    """Stored before the refusal existed: the results list it under the prompts left out and count none."""
    campaign, alpha, beta = pairwise
    assert import_judgments(
        campaign, csv_text(PAIRWISE_HEADER, f"1,ann,{alpha},{beta},left", f"3,ann,{alpha},{beta},left")
    ).ok
    ExcludedPrompt.objects.create(
        campaign=campaign,
        prompt=campaign.benchmark.prompts.get(position=3),
        model=beta,
        reason=ExcludedPrompt.Reason.NO_VIDEO,
    )
    data = load_campaign(campaign)
    assert [j.prompt.position for j in data.paired] == [1]
    assert data.skipped.counts == {"prompt left out of the campaign": 1}
    assert data.skipped.prompts_not_in_campaign == [
        {"prompt": 3, "model": beta.label, "reason": "no ready video", "judgments_skipped": 1}
    ]
