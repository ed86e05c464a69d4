"""VAE reconstruction evaluations end to end: the job decodes the original files, reconstructs them with a tiny
random-weight VAE (or pairs them with another model's videos), stores per-video figures and I3D features as
it goes, and summarises them; failures are clear and a retried job resumes without duplicating rows."""

import shutil

import numpy as np
import pytest
import torch

from evalsite.jobs import execute, retry_job
from evalsite.models import Job
from generation.models import VideoModel
from generation.services import delete_video, media_path
from metrics.automatic.models import VaeEvaluation, VaeEvaluationVideo
from metrics.automatic.services import MetricsError, start_vae_evaluation
from metrics.automatic.tasks import evaluate_vae
from metrics.video.decode import write_video
from metrics.video.fvd import fvd_from_features
from metrics.video.psnr import PSNR_CAP_DB

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread", "metrics_on_cpu")]


@pytest.fixture
def bench(make_benchmark):
    return make_benchmark(["一只猫在草地上奔跑", "a red car at night", "a boat on a lake"])


@pytest.fixture
def test_set(bench, make_video, tmp_path, add_ready_video):
    """A "Test set" model with three ready videos of 11 frames at 48x32 (one with a seed)."""
    model = VideoModel.objects.create(name="Test set")
    videos = [
        add_ready_video(
            model,
            bench.prompts.get(position=p),
            make_video(tmp_path / f"t{p}.mp4", seed=p, frames=11, width=48, height=32),
            seed,
        )
        for p, seed in [(1, 7), (2, None), (3, None)]
    ]
    return model, videos


@pytest.fixture
def odd_sized_pairs(bench, tmp_path, add_ready_video):
    """Test videos of 65x49 (lossless FFV1 originals; their playable copies are padded to 66x50) and a second
    model holding the very same files as its "reconstructions"."""
    test_model = VideoModel.objects.create(name="Test set", version="odd")
    recon_model = VideoModel.objects.create(name="Identity VAE")
    rng = np.random.default_rng(0)
    pairs = []
    for position in (1, 2, 3):
        path = tmp_path / f"odd{position}.mkv"
        write_video(path, rng.integers(0, 256, size=(10, 49, 65, 3), dtype=np.uint8), codec="ffv1")
        prompt = bench.prompts.get(position=position)
        pairs.append((add_ready_video(test_model, prompt, path), add_ready_video(recon_model, prompt, path)))
    return test_model, recon_model, pairs


def run_evaluation(capture, **kwargs) -> VaeEvaluation:
    with capture(execute=True):
        evaluation = start_vae_evaluation(**kwargs)
    evaluation.refresh_from_db()
    return evaluation


def test_vae_evaluation_runs_end_to_end_with_rfvd_from_stored_features(
    test_set, tiny_vae_dir, tiny_i3d_file, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.EVALSITE_I3D_PATH = str(tiny_i3d_file)
    model, videos = test_set
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks, name="Tiny Wan", test_model=model, vae_path=str(tiny_vae_dir)
    )
    job = Job.objects.get(pk=evaluation.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.queue == "gpu" and job.progress_done == job.progress_total == 3

    rows = list(evaluation.video_results.order_by("video__prompt__position"))
    assert [r.video_id for r in rows] == [v.pk for v in videos]
    # 11 frames -> the longest 1 + 4k prefix; 48x32 is a multiple of the spatial factor 4.
    assert all((r.frames, r.width, r.height) == (9, 48, 32) for r in rows)
    assert all(0 < r.ssim < 1 and 0 < r.psnr < PSNR_CAP_DB for r in rows)
    assert evaluation.downsample_label == "4x4x4"
    assert (evaluation.video_count, evaluation.frame_count) == (3, 27)
    assert evaluation.ssim == pytest.approx(np.mean([r.ssim for r in rows]), rel=1e-12)
    assert evaluation.psnr == pytest.approx(np.mean([r.psnr for r in rows]), rel=1e-12)

    truth = np.stack([r.feature_vectors()[0] for r in rows])
    recon = np.stack([r.feature_vectors()[1] for r in rows])
    assert truth.shape == recon.shape == (3, 400) and truth.dtype == np.float32
    expected = fvd_from_features(torch.from_numpy(truth), torch.from_numpy(recon))
    assert evaluation.rfvd == pytest.approx(expected, rel=1e-9) and evaluation.rfvd > 0
    assert evaluation.rfvd_unavailable == ""
    assert evaluation.options["device"] == "cpu" and evaluation.options["vae_class"] == "AutoencoderKLWan"
    assert evaluation.options["i3d"] == "native" and evaluation.completed_at is not None


def test_without_i3d_weights_rfvd_is_unavailable_with_the_loaders_message(
    test_set, tiny_vae_dir, tmp_path, settings, celery_eager, django_capture_on_commit_callbacks, admin_client
):
    settings.EVALSITE_I3D_PATH = str(tmp_path / "weights" / "i3d_torchscript.pt")
    model, _ = test_set
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks, name="Tiny Wan", test_model=model, vae_path=str(tiny_vae_dir)
    )
    assert evaluation.job.status == Job.Status.SUCCEEDED, evaluation.job.error
    assert evaluation.rfvd is None
    assert evaluation.rfvd_unavailable.startswith("rFVD is unavailable")
    assert str(tmp_path / "weights" / "i3d_torchscript.pt") in evaluation.rfvd_unavailable
    assert "EVALSITE_I3D_PATH" in evaluation.rfvd_unavailable
    assert evaluation.video_results.count() == 3
    assert not any(r.has_features for r in evaluation.video_results.all())
    assert evaluation.ssim is not None and evaluation.psnr is not None
    page = admin_client.get(f"/metrics/vae/{evaluation.pk}/").content.decode()
    assert "rFVD is unavailable" in page and "EVALSITE_I3D_PATH" in page


def test_identical_reconstructions_give_ssim_one_and_psnr_at_the_cap_from_the_original_files(
    odd_sized_pairs, tiny_i3d_file, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.EVALSITE_I3D_PATH = str(tiny_i3d_file)
    test_model, recon_model, pairs = odd_sized_pairs
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks,
        name="Identity",
        test_model=test_model,
        reconstruction_model=recon_model,
        downsample_label="1x1x1",
    )
    assert evaluation.job.status == Job.Status.SUCCEEDED, evaluation.job.error
    assert evaluation.mode == VaeEvaluation.Mode.RECONSTRUCTIONS
    rows = list(evaluation.video_results.order_by("video__prompt__position"))
    assert [(r.video_id, r.reconstruction_id) for r in rows] == [(t.pk, r.pk) for t, r in pairs]
    # 65x49: the originals were decoded, not the playable copies (padded to even sizes).
    assert all((r.frames, r.width, r.height) == (10, 65, 49) for r in rows)
    assert all(r.ssim == pytest.approx(1.0, abs=1e-6) and r.psnr == PSNR_CAP_DB for r in rows)
    assert evaluation.ssim == pytest.approx(1.0, abs=1e-6) and evaluation.psnr == PSNR_CAP_DB
    assert evaluation.rfvd == pytest.approx(0.0, abs=1e-6)
    assert evaluation.downsample_label == "1x1x1"


def test_a_retried_job_resumes_and_never_duplicates_rows(
    odd_sized_pairs, settings, tmp_path, celery_eager, django_capture_on_commit_callbacks
):
    settings.EVALSITE_I3D_PATH = str(tmp_path / "absent.pt")
    test_model, recon_model, pairs = odd_sized_pairs
    second = media_path(pairs[1][0].original_file)
    shutil.move(second, tmp_path / "aside")
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks,
        name="Identity",
        test_model=test_model,
        reconstruction_model=recon_model,
    )
    job = Job.objects.get(pk=evaluation.job_id)
    assert job.status == Job.Status.FAILED
    assert "original file of video" in job.error and "missing" in job.error
    assert not job.error_detail  # a message for the manager, not a traceback
    first = evaluation.video_results.get()
    assert first.video_id == pairs[0][0].pk and evaluation.completed_at is None

    shutil.move(tmp_path / "aside", second)
    with django_capture_on_commit_callbacks(execute=True):
        retry_job(job)
    job.refresh_from_db()
    evaluation.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.attempts == 2
    assert evaluation.video_results.count() == 3 and evaluation.video_count == 3
    assert evaluation.video_results.get(video=pairs[0][0]).pk == first.pk  # kept, not measured again
    execute(str(job.pk), evaluate_vae.handler)  # a late duplicate delivery changes nothing
    assert VaeEvaluationVideo.objects.count() == 3


def test_missing_reconstruction_is_refused_at_start_and_fails_the_job_if_it_goes_later(
    odd_sized_pairs, tmp_path, add_ready_video, celery_eager, django_capture_on_commit_callbacks
):
    test_model, recon_model, pairs = odd_sized_pairs
    delete_video(pairs[2][1])
    with pytest.raises(MetricsError, match=r"1 of 3 test videos lack a reconstruction: .*prompt 3"):
        start_vae_evaluation(name="Identity", test_model=test_model, reconstruction_model=recon_model)
    assert not VaeEvaluation.objects.exists() and not Job.objects.exists()

    other = VideoModel.objects.create(name="Other recon")
    for test_video, _ in pairs:
        add_ready_video(other, test_video.prompt, tmp_path / f"odd{test_video.prompt.position}.mkv")
    with django_capture_on_commit_callbacks() as callbacks:
        evaluation = start_vae_evaluation(name="Other", test_model=test_model, reconstruction_model=other)
    delete_video(other.videos.get(prompt__position=2))
    for callback in callbacks:
        callback()
    job = Job.objects.get(pk=evaluation.job_id)
    assert job.status == Job.Status.FAILED
    assert "lack a reconstruction" in job.error and "prompt 2" in job.error
    assert not evaluation.video_results.exists()


def test_frame_size_mismatch_is_a_clear_job_error(
    bench, test_set, make_video, tmp_path, add_ready_video, celery_eager, django_capture_on_commit_callbacks
):
    model, videos = test_set
    small = VideoModel.objects.create(name="Small recon")
    for video in videos:
        add_ready_video(
            small, video.prompt, make_video(tmp_path / f"s{video.pk}.mp4", width=32, height=48), video.seed
        )
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks, name="Small", test_model=model, reconstruction_model=small
    )
    assert evaluation.job.status == Job.Status.FAILED
    assert "frame sizes differ" in evaluation.job.error and "is 48x32" in evaluation.job.error
    assert "is 32x48" in evaluation.job.error


def test_bad_vae_inputs_are_refused_or_fail_the_job_clearly(
    test_set, tiny_vae_dir, tmp_path, celery_eager, django_capture_on_commit_callbacks
):
    model, _ = test_set
    with pytest.raises(MetricsError, match="no folder at"):
        start_vae_evaluation(name="x", test_model=model, vae_path=str(tmp_path / "nowhere"))
    not_a_vae = tmp_path / "unet"
    not_a_vae.mkdir()
    (not_a_vae / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(MetricsError, match="UNet2DModel, not a supported video VAE"):
        start_vae_evaluation(name="x", test_model=model, vae_path=str(not_a_vae))
    with pytest.raises(MetricsError, match="kind 'cogvideox' asks for AutoencoderKLCogVideoX"):
        start_vae_evaluation(name="x", test_model=model, vae_path=str(tiny_vae_dir), vae_kind="cogvideox")
    with pytest.raises(MetricsError, match="either a VAE folder or a model"):
        start_vae_evaluation(name="x", test_model=model)
    empty = VideoModel.objects.create(name="Empty")
    with pytest.raises(MetricsError, match="no ready videos"):
        start_vae_evaluation(name="x", test_model=empty, vae_path=str(tiny_vae_dir))
    assert not VaeEvaluation.objects.exists()

    for weights in tiny_vae_dir.glob("*.safetensors"):
        weights.write_bytes(b"not really weights")
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks, name="Broken", test_model=model, vae_path=str(tiny_vae_dir)
    )
    assert evaluation.job.status == Job.Status.FAILED
    assert evaluation.job.error.startswith(f"cannot load the VAE from {tiny_vae_dir}")
    assert not evaluation.video_results.exists() and evaluation.completed_at is None


@pytest.mark.gpu
def test_on_cuda_the_job_gives_the_cpu_figures(
    test_set,
    odd_sized_pairs,
    tiny_vae_dir,
    tiny_i3d_file,
    settings,
    celery_eager,
    django_capture_on_commit_callbacks,
):
    settings.EVALSITE_I3D_PATH = str(tiny_i3d_file)
    model, _ = test_set
    on_cpu = run_evaluation(
        django_capture_on_commit_callbacks, name="cpu", test_model=model, vae_path=str(tiny_vae_dir)
    )
    settings.EVALSITE_METRICS_DEVICE = "auto"
    on_cuda = run_evaluation(
        django_capture_on_commit_callbacks, name="cuda", test_model=model, vae_path=str(tiny_vae_dir)
    )
    assert on_cuda.job.status == Job.Status.SUCCEEDED, on_cuda.job.error
    assert on_cuda.options["device"] == "cuda" and on_cpu.options["device"] == "cpu"
    # cuDNN may use TF32 convolutions, so a reconstructed pixel can round to a neighbouring uint8 level.
    assert on_cuda.ssim == pytest.approx(on_cpu.ssim, abs=2e-3)
    assert on_cuda.psnr == pytest.approx(on_cpu.psnr, rel=1e-2)
    assert on_cuda.rfvd == pytest.approx(on_cpu.rfvd, rel=5e-2)

    test_model, recon_model, _ = odd_sized_pairs
    identical = run_evaluation(
        django_capture_on_commit_callbacks, name="id", test_model=test_model, reconstruction_model=recon_model
    )
    assert identical.options["device"] == "cuda"
    assert identical.ssim == pytest.approx(1.0, abs=1e-6) and identical.psnr == PSNR_CAP_DB


def test_the_job_streams_and_stores_the_figures_of_the_whole_decoded_videos(
    test_set,
    tiny_vae_dir,
    tiny_i3d_file,
    settings,
    celery_eager,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    """VAE mode with chunks: the stored figures are those of the whole decoded, whole reconstructed video,
    and the job never decodes a whole video (decoding it whole here fails the job)."""
    import metrics.video.decode
    from metrics.video.frames import thwc_to_tchw
    from metrics.video.fvd import clip_from_frames, i3d_features, preprocess_for_i3d
    from metrics.video.i3d import load_i3d
    from metrics.video.psnr import psnr_per_frame
    from metrics.video.ssim import ssim_per_frame
    from metrics.video.vae import load_video_vae, reconstruct, usable_clip

    settings.EVALSITE_I3D_PATH = str(tiny_i3d_file)
    decode_whole = metrics.video.decode.decode_video

    def refuse(*args, **kwargs):
        raise AssertionError("a job decoded a whole video")

    monkeypatch.setattr(metrics.video.decode, "decode_video", refuse)
    model, videos = test_set
    evaluation = run_evaluation(
        django_capture_on_commit_callbacks,
        name="Tiny Wan",
        test_model=model,
        vae_path=str(tiny_vae_dir),
        chunk_frames=5,
        max_frames=10,
    )
    assert evaluation.job.status == Job.Status.SUCCEEDED, evaluation.job.error
    vae, i3d = load_video_vae(tiny_vae_dir), load_i3d(str(tiny_i3d_file))
    for video in videos:
        frames = decode_whole(media_path(video.original_file), max_frames=10)
        truth = thwc_to_tchw(usable_clip(vae, frames, chunk_frames=5))
        recon = thwc_to_tchw(reconstruct(vae, frames, chunk_frames=5))
        row = evaluation.video_results.get(video=video)
        assert (row.frames, row.width, row.height) == (10, 48, 32)  # chunks of 5 + 5
        assert row.ssim == pytest.approx(float(ssim_per_frame(recon, truth).double().mean()), abs=1e-7)
        assert row.psnr == pytest.approx(float(psnr_per_frame(recon, truth).mean()), abs=1e-9)
        clips = torch.stack([clip_from_frames(preprocess_for_i3d(f)) for f in (truth, recon)])
        expected = i3d_features(i3d, clips).numpy()
        np.testing.assert_allclose(row.feature_vectors()[0], expected[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(row.feature_vectors()[1], expected[1], rtol=1e-4, atol=1e-6)
