"""Automatic scores of generated videos: motion score always, CLIP score with local weights only, stored per
video, metric and settings, summarised per model and per category; runs resume without duplicating rows."""

import numpy as np
import pytest

from evalsite.models import Job
from generation.models import VideoModel
from generation.services import load_benchmark, media_path
from metrics.automatic import selectors
from metrics.automatic.models import AutoScore, AutoScoreRun, ScoreSettings
from metrics.automatic.services import MetricsError, start_auto_score_run
from metrics.video.clip_score import load_clip_scorer
from metrics.video.decode import decode_video
from metrics.video.motion import motion_score

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread", "metrics_on_cpu")]


@pytest.fixture
def bench(tmp_path):
    path = tmp_path / "cats.csv"
    path.write_text(
        "prompt,category\n一只猫在草地上奔跑,Animals\na dog in the snow,Animals\na red car at night,Vehicles\n",
        encoding="utf-8",
    )
    return load_benchmark(path, fmt="csv", slug="cats", name="Cats").benchmark


@pytest.fixture
def two_models(bench, make_video, tmp_path, add_ready_video):
    """Models A and B, each with a ready 8-frame 48x32 video for every prompt."""
    models = {}
    for offset, name in enumerate(["A", "B"]):
        model = VideoModel.objects.create(name=name)
        for prompt in bench.prompts.all():
            path = make_video(
                tmp_path / f"{name}{prompt.position}.mp4",
                seed=10 * offset + prompt.position,
                frames=8,
                width=48,
                height=32,
            )
            add_ready_video(model, prompt, path)
        models[name] = model
    return models


def start(capture, **kwargs) -> AutoScoreRun:
    with capture(execute=True):
        run = start_auto_score_run(**kwargs)
    run.refresh_from_db()
    return run


def test_motion_and_clip_scores_are_stored_per_video_and_summarised_per_category(
    bench, two_models, tiny_clip_folder, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.EVALSITE_CLIP_MODEL = f"local-dir:{tiny_clip_folder}"
    runs = [start(django_capture_on_commit_callbacks, model=m, benchmark=bench) for m in two_models.values()]
    for run in runs:
        assert run.job.status == Job.Status.SUCCEEDED, run.job.error
        assert run.job.queue == "gpu" and run.clip_unavailable == "" and run.video_count == 3
        assert run.clip_settings is not None and run.completed_at is not None
    assert AutoScore.objects.count() == 2 * 3 * 4  # videos x (CLIP, Motion_Mean/Max/Min)
    assert ScoreSettings.objects.count() == 2  # one CLIP and one motion settings row, shared by both runs

    scorer = load_clip_scorer(f"local-dir:{tiny_clip_folder}")
    video = two_models["A"].videos.get(prompt__position=1)
    frames = decode_video(media_path(video.original_file))
    stored = {s.metric: s.value for s in video.auto_scores.all()}
    motion = motion_score(frames)
    assert stored["motion_mean"] == pytest.approx(motion.mean, rel=1e-12)
    assert stored["motion_max"] == pytest.approx(motion.max, rel=1e-12)
    assert stored["motion_min"] == pytest.approx(motion.min, rel=1e-12)
    assert stored["motion_max"] >= stored["motion_mean"] >= stored["motion_min"] > 0
    assert stored["clip_score"] == pytest.approx(scorer.score(frames, video.prompt.text), abs=1e-6)

    summary = selectors.auto_score_summary(bench)
    assert [c.metric for c in summary.columns] == ["clip_score", "motion_mean", "motion_max", "motion_min"]
    assert [str(r.model) for r in summary.models] == ["A", "B"]
    for row in summary.models:
        for column, cell in zip(summary.columns, row.cells, strict=True):
            values = AutoScore.objects.filter(
                video__model=row.model, metric=column.metric, settings=column.settings
            ).values_list("value", flat=True)
            assert cell.count == 3 and cell.mean == pytest.approx(np.mean(list(values)), rel=1e-9)
    assert [(r.category, str(r.model)) for r in summary.categories] == [
        ("Animals", "A"),
        ("Animals", "B"),
        ("Vehicles", "A"),
        ("Vehicles", "B"),
    ]
    animals_a = summary.categories[0].cells[1]  # Motion_Mean of A on Animals: prompts 1 and 2
    expected = AutoScore.objects.filter(
        video__model=two_models["A"], video__prompt__position__in=[1, 2], metric="motion_mean"
    ).values_list("value", flat=True)
    assert animals_a.count == 2 and animals_a.mean == pytest.approx(np.mean(list(expected)), rel=1e-9)

    again = start(django_capture_on_commit_callbacks, model=two_models["A"], benchmark=bench)
    assert again.job.status == Job.Status.SUCCEEDED and AutoScore.objects.count() == 24


def test_without_clip_weights_motion_is_scored_and_clip_reported_unavailable(
    bench, two_models, tmp_path, settings, celery_eager, django_capture_on_commit_callbacks, admin_client
):
    settings.EVALSITE_CLIP_MODEL = "xlm-roberta-base-ViT-B-32"
    settings.EVALSITE_CLIP_CHECKPOINT = str(tmp_path / "weights" / "clip" / "open_clip_pytorch_model.bin")
    run = start(django_capture_on_commit_callbacks, model=two_models["A"], benchmark=bench)
    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    assert run.clip_settings is None
    assert run.clip_unavailable.startswith("CLIP score is unavailable")
    assert "EVALSITE_CLIP_CHECKPOINT" in run.clip_unavailable and str(tmp_path) in run.clip_unavailable
    assert run.job.result["clip_unavailable"] == run.clip_unavailable
    assert set(AutoScore.objects.values_list("metric", flat=True)) == {
        "motion_mean",
        "motion_max",
        "motion_min",
    }
    assert AutoScore.objects.count() == 9
    page = admin_client.get("/metrics/scores/?benchmark=cats").content.decode()
    assert "CLIP score is unavailable" in page and "Motion_Mean" in page


def test_clip_needs_a_local_text_folder_and_never_a_hub(bench, two_models, tmp_path, settings):
    from metrics.automatic.services import clip_configuration, clip_unavailable_reason

    weights = tmp_path / "open_clip_pytorch_model.bin"
    weights.write_bytes(b"x")
    settings.EVALSITE_CLIP_CHECKPOINT = str(weights)
    settings.EVALSITE_CLIP_TEXT_DIR = str(tmp_path / "no-such-folder")
    reason = clip_unavailable_reason(clip_configuration())
    assert reason and "EVALSITE_CLIP_TEXT_DIR" in reason and "xlm-roberta-base" in reason
    settings.EVALSITE_CLIP_MODEL = "hf-hub:laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k"
    assert "fetches nothing from a hub" in clip_unavailable_reason(clip_configuration())


def test_a_video_whose_original_cannot_be_decoded_is_skipped_with_the_reason(
    bench, two_models, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.EVALSITE_CLIP_CHECKPOINT = ""
    broken = two_models["B"].videos.get(prompt__position=2)
    media_path(broken.original_file).write_bytes(b"no longer a video")
    run = start(django_capture_on_commit_callbacks, model=two_models["B"], benchmark=bench)
    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    assert "no weights file is configured" in run.clip_unavailable
    (skipped,) = run.skipped
    assert skipped["video"] == broken.pk and skipped["reason"].startswith("cannot decode the original")
    assert AutoScore.objects.count() == 6 and not broken.auto_scores.exists()


def test_a_run_needs_ready_videos(bench):
    with pytest.raises(MetricsError, match="no ready videos on Cats"):
        start_auto_score_run(model=VideoModel.objects.create(name="Nobody"), benchmark=bench)
    assert not AutoScoreRun.objects.exists()


def test_the_default_clip_settings_are_the_librarys():
    import os

    from django.conf import settings

    from metrics.video.clip_score import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

    if "EVALSITE_CLIP_MODEL" not in os.environ:
        assert settings.EVALSITE_CLIP_MODEL == DEFAULT_CLIP_MODEL
    if "EVALSITE_CLIP_PRETRAINED" not in os.environ:
        assert settings.EVALSITE_CLIP_PRETRAINED == DEFAULT_CLIP_PRETRAINED


def test_the_scores_job_never_decodes_a_whole_video(
    bench,
    two_models,
    tiny_clip_folder,
    settings,
    celery_eager,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    import metrics.video.decode

    def refuse(*args, **kwargs):
        raise AssertionError("a job decoded a whole video")

    monkeypatch.setattr(metrics.video.decode, "decode_video", refuse)
    monkeypatch.setattr(metrics.video.decode, "iter_frame_chunks", refuse)
    settings.EVALSITE_CLIP_MODEL = f"local-dir:{tiny_clip_folder}"
    run = start(django_capture_on_commit_callbacks, model=two_models["A"], benchmark=bench)
    assert run.job.status == Job.Status.SUCCEEDED, run.job.error
    assert run.skipped == [] and AutoScore.objects.count() == 3 * 4
