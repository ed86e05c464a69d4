"""Bulk import from folders, manifests and archives: checks first, all or nothing, idempotent."""

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from generation.importing import extract_archive, plan_import, run_import, safe_path
from generation.models import Refusal, Video, VideoModel
from generation.services import GenerationError

pytestmark = pytest.mark.django_db


@pytest.fixture
def bench(make_benchmark):
    return make_benchmark(["一只猫在草地上奔跑", "a red car at night", "a boat on a lake"])


@pytest.fixture
def alpha():
    return VideoModel.objects.create(name="Alpha", version="1")


@pytest.fixture
def root(settings):
    return settings.EVALSITE_IMPORT_ROOTS[0]


def media_files(settings) -> list[Path]:
    base = Path(settings.MEDIA_ROOT)
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.exists() else []


def test_folder_import_then_again_changes_nothing(bench, alpha, root, make_video, settings):
    make_video(root / "Alpha" / "1.mp4", seed=1)
    make_video(root / "Alpha" / "2_seed7.mp4", seed=2)
    plan = plan_import(root, benchmark=bench, allowed_roots=settings.EVALSITE_IMPORT_ROOTS)
    assert plan.errors == ["Alpha/1.mp4: unknown model 'Alpha'", "Alpha/2_seed7.mp4: unknown model 'Alpha'"]
    alpha.version = ""  # a folder names its model by name alone
    alpha.save()
    plan = plan_import(root, benchmark=bench)
    assert plan.errors == [] and plan.report()["would_import"] == 2
    assert run_import(plan) == {"imported": 2, "already_present": 0, "refusals": 0}
    videos = {v.prompt.position: v for v in Video.objects.select_related("prompt")}
    assert videos[2].seed == 7 and videos[1].seed is None
    assert all(
        v.status == Video.Status.READY and v.frame_count == 12 and v.width == 64 for v in videos.values()
    )
    files_before = media_files(settings)
    again = plan_import(root, benchmark=bench)
    assert again.report()["already_present"] == 2 and again.report()["would_import"] == 0
    assert run_import(again)["imported"] == 0
    assert Video.objects.count() == 2 and media_files(settings) == files_before


def test_manifest_with_text_prompts_settings_and_a_refusal(bench, alpha, root, make_video):
    make_video(root / "clips" / "a.mp4", seed=3)
    (root / "manifest.jsonl").write_text(
        "\n".join(
            json.dumps(row, ensure_ascii=False)
            for row in [
                {
                    "path": "clips/a.mp4",
                    "model": "Alpha",
                    "model_version": "1",
                    "prompt": "一只猫在草地上奔跑",
                    "seed": 11,
                    "noise_id": "n-1",
                    "settings": {"steps": 50, "cfg": 9.0},
                },
                {
                    "model": "Alpha",
                    "model_version": "1",
                    "prompt_position": 3,
                    "refused": True,
                    "refusal_reason": "policy",
                },
            ]
        ),
        encoding="utf-8",
    )
    plan = plan_import(root, benchmark=bench)
    assert plan.errors == []
    run_import(plan)
    video = Video.objects.get()
    assert video.prompt.position == 1 and video.seed == 11 and video.noise_id == "n-1"
    assert video.generation_settings == {"steps": 50, "cfg": 9.0}
    assert Refusal.objects.get().prompt.position == 3


def test_bad_manifest_lists_every_problem_by_line_and_imports_nothing(
    bench, alpha, root, make_video, settings, tmp_path
):
    make_video(root / "ok.mp4", seed=1)
    (root / "notes.mp4").write_text("this is not a video", encoding="utf-8")
    outside = make_video(tmp_path / "outside.mp4", seed=9)
    os.symlink(outside, root / "link.mp4")
    (root / "manifest.csv").write_text(
        "path,model,model_version,prompt_position,seed\n"
        "ok.mp4,Alpha,1,1,1\n"
        "ok2.mp4,Nobody,,1,\n"
        "../outside.mp4,Alpha,1,2,\n"
        "/etc/passwd,Alpha,1,2,\n"
        "notes.mp4,Alpha,1,2,\n"
        "link.mp4,Alpha,1,3,\n"
        "ok.mp4,Alpha,1,9,\n"
        "ok.mp4,Alpha,1,2,x\n",
        encoding="utf-8",
    )
    plan = plan_import(root, benchmark=bench)
    errors = "\n".join(plan.errors)
    assert "manifest.csv, line 3: unknown model 'Nobody'" in errors
    assert "line 4: path '../outside.mp4' escapes the import folder" in errors
    assert "line 5: path '/etc/passwd' escapes the import folder" in errors
    assert "line 6:" in errors and "not a video" in errors.lower()
    assert "line 7: path 'link.mp4' escapes the import folder (through a link)" in errors
    assert "line 8: tiny has no prompt at position 9" in errors
    assert "line 9: seed must be a whole number" in errors
    assert len(plan.errors) == 7
    with pytest.raises(GenerationError, match="7 problem"):
        run_import(plan)
    assert Video.objects.count() == 0 and media_files(settings) == []


def test_same_seed_twice_and_refused_prompt_are_problems(bench, alpha, root, make_video):
    make_video(root / "a.mp4", seed=1)
    make_video(root / "b.mp4", seed=2)
    Refusal.objects.create(model=alpha, prompt=bench.prompts.get(position=3))
    make_video(root / "c.mp4", seed=3)
    (root / "manifest.csv").write_text(
        "path,model,model_version,prompt_position,seed\na.mp4,Alpha,1,1,5\nb.mp4,Alpha,1,1,5\nc.mp4,Alpha,1,3,\n",
        encoding="utf-8",
    )
    errors = plan_import(root, benchmark=bench).errors
    assert any("seed 5 appears twice" in e for e in errors)
    assert any("refused prompt 3" in e for e in errors)


def test_folder_outside_the_import_roots_is_refused(tmp_path, bench, settings):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(GenerationError, match="outside the folders this site imports from"):
        plan_import(elsewhere, benchmark=bench, allowed_roots=settings.EVALSITE_IMPORT_ROOTS)


def test_safe_path_refuses_escapes(tmp_path):
    for bad in ["../x", "a/../../x", "/abs", "C:\\x", "a\\..\\..\\x", ""]:
        with pytest.raises(GenerationError):
            safe_path(tmp_path, bad)
    assert safe_path(tmp_path, "a/b.mp4") == (tmp_path / "a" / "b.mp4").resolve()


def zip_bytes(
    members: dict[str, bytes], symlinks: dict[str, str] | None = None, compression: int = zipfile.ZIP_STORED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def test_archive_with_escaping_member_or_link_is_refused_and_leaves_nothing(tmp_path):
    for members, links in [({"../evil.mp4": b"x"}, None), ({"ok.txt": b"x"}, {"link.mp4": "/etc/passwd"})]:
        archive = tmp_path / "a.zip"
        archive.write_bytes(zip_bytes(members, links))
        destination = tmp_path / "out"
        with pytest.raises(GenerationError, match="escapes the import folder|symbolic link"):
            extract_archive(archive, destination)
        assert not destination.exists() and not (tmp_path / "out.partial").exists()
        assert not (tmp_path / "evil.mp4").exists()
    (tmp_path / "b.zip").write_bytes(b"not a zip")
    with pytest.raises(GenerationError, match="not a readable zip"):
        extract_archive(tmp_path / "b.zip", tmp_path / "out")


def bomb_limits(**change):
    from generation.importing import ArchiveLimits

    return ArchiveLimits(**{"max_bytes": 64 * 2**20, "max_members": 100, "max_ratio": 20, **change})


def test_archives_over_the_size_member_or_ratio_limits_are_refused_before_unpacking(tmp_path):
    cases = [
        ({"big.mp4": b"\0" * (3 * 2**20)}, bomb_limits(max_bytes=2 * 2**20), "unpacks to 3 MiB"),
        ({f"{i}.txt": b"x" for i in range(101)}, bomb_limits(), "holds 101 files, over the limit of 100"),
        ({"big.mp4": b"\0" * (8 * 2**20)}, bomb_limits(), "member 'big.mp4' expands [0-9]+ times"),
    ]
    for members, limits, said in cases:
        archive = tmp_path / "tmp8f3k2.zip"
        archive.write_bytes(zip_bytes(members, compression=zipfile.ZIP_DEFLATED))
        with pytest.raises(GenerationError, match=said) as caught:
            extract_archive(archive, tmp_path / "out", limits=limits, shown_name="batch.zip")
        assert str(caught.value).startswith("batch.zip: ") and "tmp8f3k2" not in str(caught.value)
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_a_failed_archive_import_removes_its_archive_and_names_the_upload(
    admin_client,
    bench,
    alpha,
    make_video,
    tmp_path,
    celery_eager,
    django_capture_on_commit_callbacks,
    settings,
):
    from evalsite.models import Job

    settings.EVALSITE_ARCHIVE_MAX_MEMBERS = 3
    archive = zip_bytes({f"v/{i}.mp4": b"x" for i in range(4)})
    upload = io.BytesIO(archive)
    upload.name = "my-batch.zip"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/api/videos/import/", {"archive": upload, "benchmark": "tiny"})
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("my-batch.zip: holds 4 files"), job.error
    assert [p for p in Path(settings.MEDIA_ROOT, "tmp").rglob("*") if p.is_file()] == []


def test_a_dry_run_of_an_archive_leaves_no_temporary_files(
    admin_client,
    bench,
    alpha,
    make_video,
    tmp_path,
    celery_eager,
    django_capture_on_commit_callbacks,
    settings,
):
    clip = make_video(tmp_path / "clip.mp4", seed=4).read_bytes()
    manifest = b"path,model,model_version,prompt_position\nv/1.mp4,Alpha,1,2\n"
    upload = io.BytesIO(zip_bytes({"manifest.csv": manifest, "v/1.mp4": clip}))
    upload.name = "batch.zip"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/api/videos/import/", {"archive": upload, "benchmark": "tiny", "dry_run": "true"}
        )
    assert response.status_code == 202
    assert [p for p in Path(settings.MEDIA_ROOT, "tmp").rglob("*") if p.is_file()] == []
    assert not Video.objects.exists()


def test_an_import_naming_a_held_file_with_another_seed_is_a_problem(bench, alpha, root, make_video):
    make_video(root / "a.mp4", seed=1)
    (root / "manifest.csv").write_text(
        "path,model,model_version,prompt_position,seed\na.mp4,Alpha,1,1,5\n", encoding="utf-8"
    )
    run_import(plan_import(root, benchmark=bench))
    (root / "manifest.csv").write_text(
        "path,model,model_version,prompt_position,seed\na.mp4,Alpha,1,1,6\n", encoding="utf-8"
    )
    plan = plan_import(root, benchmark=bench)
    assert len(plan.errors) == 1 and "with seed 5, not 6" in plan.errors[0]


def test_command_dry_run_reports_and_writes_nothing(bench, alpha, root, make_video):
    make_video(root / "1.mp4", seed=1)
    out = io.StringIO()
    call_command(
        "import_videos",
        str(root),
        "--benchmark",
        "tiny",
        "--model",
        "Alpha",
        "--create-models",
        "--dry-run",
        stdout=out,
    )
    assert "1 to import, 0 already present, 0 refusals, 0 problems" in out.getvalue()
    assert Video.objects.count() == 0 and not VideoModel.objects.filter(name="Alpha", version="").exists()
    call_command(
        "import_videos",
        str(root),
        "--benchmark",
        "tiny",
        "--model",
        "Alpha",
        "--create-models",
        stdout=io.StringIO(),
    )
    assert Video.objects.get().model == VideoModel.objects.get(name="Alpha", version="")


def test_command_with_problems_fails(bench, root):
    (root / "Ghost").mkdir()
    (root / "Ghost" / "1.mp4").write_bytes(b"")
    with pytest.raises(CommandError, match="problem"):
        call_command(
            "import_videos", str(root), "--benchmark", "tiny", stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_api_archive_import_runs_as_a_job(
    admin_client,
    bench,
    alpha,
    make_video,
    tmp_path,
    celery_eager,
    django_capture_on_commit_callbacks,
    settings,
):
    clip = make_video(tmp_path / "clip.mp4", seed=4).read_bytes()
    manifest = b"path,model,model_version,prompt_position,seed\nv/1.mp4,Alpha,1,2,3\n"
    archive = zip_bytes({"manifest.csv": manifest, "v/1.mp4": clip})
    upload = io.BytesIO(archive)
    upload.name = "batch.zip"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/api/videos/import/", {"archive": upload, "benchmark": "tiny"})
    assert response.status_code == 202, response.content
    job = response.json()
    from evalsite.models import Job

    done = Job.objects.get(pk=job["id"])
    assert done.status == Job.Status.SUCCEEDED, done.error
    assert done.result["imported"] == 1 and done.result["plan"]["would_import"] == 1
    assert Video.objects.get().seed == 3
    leftovers = [p for p in Path(settings.MEDIA_ROOT, "tmp").rglob("*") if p.is_file()]
    assert leftovers == []


def test_api_folder_import_outside_roots_is_a_400(admin_client, tmp_path, bench):
    response = admin_client.post("/api/videos/import/", {"root": str(tmp_path), "benchmark": "tiny"})
    assert response.status_code == 400 and "outside the folders" in response.json()["detail"]


def test_the_plan_checks_every_database_limit_so_a_clean_plan_cannot_fail(bench, root, make_video, settings):
    make_video(root / "ok.mp4", seed=1)
    rows = [
        {"path": "ok.mp4", "model": "Alpha", "prompt_position": 1, "seed": 10**20},
        {"path": "ok.mp4", "model": "M" * 5000, "prompt_position": 1},
        {"path": "ok.mp4", "model": "Alpha", "model_version": "v" * 101, "prompt_position": 1},
        {"path": "ok.mp4", "model": "Alpha", "prompt_position": 1, "noise_id": "n" * 5000},
        {"path": "ok.mp4", "model": "Alpha", "prompt_position": 10**30},
        {"model": "Alpha", "prompt_position": 2, "refused": True, "refusal_reason": "r" * 501},
    ]
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    plan = plan_import(root, benchmark=bench, create_models=True)
    errors = plan.errors
    assert len(errors) == 6, errors
    assert "line 1: seed 100000000000000000000: Ensure this value is less than or equal to" in errors[0]
    assert "line 2: name 'MMMM" in errors[1] and "at most 200 characters" in errors[1]
    assert "line 3: version" in errors[2] and "at most 100 characters" in errors[2]
    assert "line 4: noise_id" in errors[3] and "at most 200 characters" in errors[3]
    assert "line 5: position" in errors[4]
    assert "line 6: reason" in errors[5] and "at most 500 characters" in errors[5]
    with pytest.raises(GenerationError):
        run_import(plan)
    assert not VideoModel.objects.exists() and not Video.objects.exists() and media_files(settings) == []


def test_a_run_that_fails_midway_leaves_nothing_behind(bench, root, make_video, settings, monkeypatch):
    """All or nothing: the second file fails to transcode (a fault, not bad input), so the model the run
    created, the first video and both files are removed again."""
    import generation.importing as importing

    make_video(root / "Gamma" / "1.mp4", seed=1)
    make_video(root / "Gamma" / "2.mp4", seed=2)
    (root / "Gamma" / "refused.txt").write_text("ignored", encoding="utf-8")
    plan = plan_import(root, benchmark=bench, create_models=True)
    assert plan.errors == []
    real_process = importing.process_video
    calls = []

    def process_then_fail(video):
        calls.append(video.pk)
        if len(calls) == 2:
            Video.objects.filter(pk=video.pk).update(status=Video.Status.FAILED, error="encoder crashed")
            video.refresh_from_db()
            return video
        return real_process(video)

    monkeypatch.setattr(importing, "process_video", process_then_fail)
    with pytest.raises(GenerationError, match="encoder crashed"):
        run_import(plan)
    assert not VideoModel.objects.filter(name="Gamma").exists()
    assert not Video.objects.exists() and media_files(settings) == []
