"""The Exports pages and API: managers create, list, read and download exports; nobody else can, and
a bad request answers with the reason and stores nothing."""

import pytest
from django.urls import reverse

from evalsite.models import Job
from preference.export import MANIFEST_NAME, read_jsonl
from preference.models import PreferenceExport
from preference.services import create_export

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("celery_eager")]


@pytest.fixture
def ready_export(scenario, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        export = create_export(
            name="shared", campaigns=scenario.campaigns, options={"validation_fraction": 0.0}
        )
    export.refresh_from_db()
    assert export.is_ready
    return export


def page_urls(export):
    return [
        reverse("preference-export-list"),
        reverse("preference-export-detail", args=[export.pk]),
        reverse("preference-export-file", args=[export.pk, "pairs-train.jsonl"]),
        reverse("preference-export-file", args=[export.pk, MANIFEST_NAME]),
    ]


def api_urls(export):
    return [
        "/api/preference-exports/",
        f"/api/preference-exports/{export.pk}/",
        f"/api/preference-exports/{export.pk}/files/pairs-train.parquet/",
    ]


def test_annotators_and_visitors_get_nothing(ready_export, annotator_client, client):
    for url in page_urls(ready_export):
        assert annotator_client.get(url).status_code == 403
    for url in api_urls(ready_export):
        assert annotator_client.get(url).status_code == 403
    response = annotator_client.post(
        "/api/preference-exports/",
        {"name": "mine", "campaigns": [c.pk for c in ready_export.campaigns.all()]},
    )
    assert response.status_code == 403
    annotator_client.logout()
    for url in page_urls(ready_export):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    for url in api_urls(ready_export):
        assert client.get(url).status_code in (401, 403)
    assert PreferenceExport.objects.count() == 1


def test_managers_see_the_list_detail_and_download_files(ready_export, admin_client, settings):
    listing = admin_client.get(reverse("preference-export-list"))
    assert listing.status_code == 200
    assert "shared v1" in listing.content.decode()
    detail = admin_client.get(reverse("preference-export-detail", args=[ready_export.pk])).content.decode()
    for entry in ready_export.manifest["files"]:
        assert reverse("preference-export-file", args=[ready_export.pk, entry["name"]]) in detail
        assert entry["sha256"] in detail
    response = admin_client.get(reverse("preference-export-file", args=[ready_export.pk, "dpo-train.jsonl"]))
    assert response.status_code == 200
    assert 'attachment; filename="shared-v1-dpo-train.jsonl"' == response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    path = settings.MEDIA_ROOT / ready_export.folder / "dpo-train.jsonl"
    assert (
        body == path.read_bytes()
        and len(read_jsonl(path)) == ready_export.manifest["counts"]["records"]["train"]
    )


def test_only_the_manifests_files_are_served(ready_export, admin_client, settings):
    (settings.MEDIA_ROOT / ready_export.folder / "secret.txt").write_text("not part of the export")
    for name in ("secret.txt", "..", "pairs-train.csv"):
        url = reverse("preference-export-file", args=[ready_export.pk, name])
        assert admin_client.get(url).status_code == 404
    assert admin_client.get(f"/api/preference-exports/{ready_export.pk}/files/secret.txt/").status_code == 404


def test_the_page_form_starts_an_export(scenario, admin_client, django_capture_on_commit_callbacks):
    data = {
        "name": "from-page",
        "campaigns": [scenario.pairwise.pk],
        "min_agreement": "0.5",
        "ties": "label",
        "granularity": "pair",
        "validation_fraction": "0.2",
        "split_seed": "abc",
        "formats": ["parquet"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("preference-export-list"), data)
    export = PreferenceExport.objects.get(name="from-page")
    assert response.status_code == 302 and response["Location"] == reverse(
        "preference-export-detail", args=[export.pk]
    )
    assert export.is_ready
    assert export.options == {
        "min_agreement": 0.5,
        "ties": "label",
        "granularity": "pair",
        "validation_fraction": 0.2,
        "split_seed": "abc",
        "formats": ["parquet"],
    }
    assert {e["format"] for e in export.manifest["files"]} == {"parquet"}

    bad = admin_client.post(reverse("preference-export-list"), {**data, "name": "no spaces allowed"})
    assert bad.status_code == 200 and "name" in bad.context["form"].errors
    assert PreferenceExport.objects.count() == 1


def test_the_api_creates_lists_retrieves_and_downloads(
    scenario, admin_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/api/preference-exports/",
            {"name": "api-export", "campaigns": [scenario.pairwise.pk, scenario.rubric.pk], "ties": "label"},
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["name"], created["version"], created["options"]["ties"]) == ("api-export", 1, "label")
    assert sorted(created["campaigns"]) == sorted([scenario.pairwise.name, scenario.rubric.name])

    detail = admin_client.get(f"/api/preference-exports/{created['id']}/").json()
    assert detail["status"] == "ready" and detail["job"]["status"] == Job.Status.SUCCEEDED
    names = [f["name"] for f in detail["files"]]
    assert names[-1] == MANIFEST_NAME and "pairs-train.parquet" in names
    dpo_file = next(f for f in detail["files"] if f["name"] == "dpo-train.jsonl")
    download = admin_client.get(dpo_file["url"])
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert len(body.splitlines()) == dpo_file["records"] == detail["manifest"]["counts"]["records"]["train"]

    listing = admin_client.get("/api/preference-exports/").json()
    assert [row["id"] for row in listing["results"]] == [created["id"]]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x y"}, "name"),
        ({"campaigns": []}, "campaigns"),
        ({"campaigns": [987654]}, "campaigns"),
        ({"ties": "sometimes"}, "ties"),
        ({"min_agreement": 2}, "min_agreement"),
        ({"formats": ["csv"]}, "formats"),
    ],
)
def test_the_api_refuses_bad_input_and_stores_nothing(scenario, admin_client, payload, field):
    body = {"name": "bad", "campaigns": [scenario.pairwise.pk], **payload}
    jobs_before = Job.objects.count()  # the campaigns' prepare-media jobs
    response = admin_client.post("/api/preference-exports/", body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()
    assert not PreferenceExport.objects.exists() and Job.objects.count() == jobs_before


def test_the_form_says_what_each_option_value_means_in_the_page_language(admin_client, admin_user):
    from evalsite.middleware import save_user_language

    page = admin_client.get(reverse("preference-export-list")).content.decode()
    assert '<option value="label">label: a tie is kept with label 0.5</option>' in page
    assert '<option value="judgment">judgment: one record per judgment</option>' in page
    save_user_language(admin_user, "zh-hans")
    page = admin_client.get(reverse("preference-export-list")).content.decode()
    assert "drop：平局不计入</option>" in page and "judgment：每次评判一条记录</option>" in page


def test_the_page_says_the_export_started_in_the_page_language(
    scenario, admin_client, admin_user, django_capture_on_commit_callbacks
):
    from evalsite.middleware import save_user_language

    save_user_language(admin_user, "zh-hans")
    data = {
        "name": "zh-export",
        "campaigns": [scenario.pairwise.pk],
        "min_agreement": "0.5",
        "ties": "drop",
        "granularity": "pair",
        "validation_fraction": "0.2",
        "split_seed": "abc",
        "formats": ["jsonl"],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("preference-export-list"), data, follow=True)
    assert "已开始构建 zh-export v1。" in response.content.decode()
