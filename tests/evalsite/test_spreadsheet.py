"""CSV downloads cannot run formulas in a spreadsheet (OWASP CSV injection): text that starts with
= + - @ (or a tab or CR) is written with a leading quote; numbers, negative ones included, stay numbers."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from pathlib import Path

import pytest

from evalsite.spreadsheet import csv_text, spreadsheet_safe
from tests.metrics.human.test_results import build_pairwise, empty_cache, make_world

__all__ = ["empty_cache"]  # the autouse fixture, shared

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Alpha bench", "Alpha bench"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-0.092, -0.092),
        (-3, -3),
        (0.5, 0.5),
    ],
)
def test_a_cell_is_neutralised_only_when_it_is_text_that_could_start_a_formula(value, written):
    assert spreadsheet_safe(value) == written


def test_csv_text_quotes_formulas_and_keeps_negative_numbers():
    text = csv_text([["model", "alpha"], ["=cmd|' /C calc'!A0", -0.092], ["-Beta", -1.0]])
    assert list(csv.reader(io.StringIO(text))) == [
        ["model", "alpha"],
        ["'=cmd|' /C calc'!A0", "-0.092"],
        ["'-Beta", "-1.0"],
    ]


def test_every_csv_writer_goes_through_the_one_function():
    found = subprocess.run(
        ["git", "grep", "-n", "-E", r"csv\.(writer|DictWriter)\(", "--", "*.py", ":!tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert [line for line in found if not line.startswith("evalsite/spreadsheet.py:")] == []


@pytest.mark.django_db
def test_result_and_leaderboard_downloads_neutralise_model_names(admin_client, django_user_model):
    world = make_world(django_user_model)
    campaign = build_pairwise(world)
    world["alpha"].name = '=HYPERLINK("http://evil","x")'
    world["alpha"].save()
    board = admin_client.get("/metrics/leaderboard/table/leaderboard.csv", {"rounds": 200}).content.decode()
    models = [row["Model"] for row in csv.DictReader(io.StringIO(board))]
    assert any(name.startswith("'=HYPERLINK") for name in models), models
    assert not re.search(r'(^|,)"?=', board, flags=re.MULTILINE)
    agreement = admin_client.get(
        f"/metrics/results/campaigns/{campaign.pk}/tables/agreement.csv", {"rounds": 200}
    ).content.decode()
    kappas = [row["Fleiss' kappa"] for row in csv.DictReader(io.StringIO(agreement))]
    assert "-1.0" in kappas, kappas  # Vehicles: a legitimately negative number stays a number


@pytest.mark.django_db
def test_the_printed_annotator_accounts_are_spreadsheet_safe_and_passwords_read_as_typed(tmp_path, client):
    from django.core.management import call_command

    from evalsite.accounts import one_time_password

    csv_path = tmp_path / "people.csv"
    csv_path.write_text("username\n@alice\n-bob\ncarol\n", encoding="utf-8")
    out = io.StringIO()
    call_command("create_annotators", str(csv_path), stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert [r[0] for r in rows] == ["username", "'@alice", "'-bob", "carol"]
    assert client.login(username="@alice", password=rows[1][1])
    assert all(one_time_password()[0].isalnum() for _ in range(500))
