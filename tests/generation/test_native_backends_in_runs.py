"""The native backends (Step-Video-T2V, Lumina-Video) generate through generation runs like any other: a run
over two prompts with their tiny checkpoints (written in the published layouts) puts ready videos in the
library with their seeds, settings and backend recorded, and a video's frames follow the seed. The
backend reads the checkpoint's configs, so a bad setting is refused before anything is queued, from the
first run on."""

import pytest

import generation.tasks  # noqa: F401  (registers the batch task for the eager runs)
from generation.backends.lumina.tiny import TINY_SETTINGS as LUMINA_TINY
from generation.backends.lumina.tiny import make_tiny_lumina
from generation.backends.stepvideo.tiny import write_tiny_checkpoint
from generation.models import GenerationItem, Video, VideoModel
from generation.runs.planning import RunSpec, plan_run, run_progress, start_run
from generation.services import GenerationError
from metrics.video.decode import decode_video

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

NATIVE = {
    "stepvideo": (write_tiny_checkpoint, {"height": 16, "width": 32, "frames": 17, "steps": 2, "fps": 8}),
    "lumina": (make_tiny_lumina, dict(LUMINA_TINY)),
}


@pytest.mark.parametrize("backend", sorted(NATIVE))
def test_a_native_backend_fills_the_library_through_a_run(
    backend, make_benchmark, tmp_path, django_capture_on_commit_callbacks, celery_eager, media_root
):
    make_checkpoint, settings = NATIVE[backend]
    checkpoint = make_checkpoint(tmp_path / backend)
    model = VideoModel.objects.create(
        name=f"tiny {backend}", backend=backend, checkpoint=str(checkpoint), default_settings=settings
    )
    bench = make_benchmark(["a cat runs on the grass", "a red car in the city"], slug=f"native-{backend}")
    with pytest.raises(GenerationError, match="frame rule"):
        start_run(
            RunSpec(model=model, benchmark=bench, seeds=[3], settings={"frames": settings["frames"] + 1})
        )
    assert not GenerationItem.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(RunSpec(model=model, benchmark=bench, seeds=[1, 2], batch_size=2))
    run.refresh_from_db()
    items = list(run.items.select_related("video", "prompt"))
    assert len(items) == 4 and all(i.status == GenerationItem.Status.DONE for i in items), [
        (i.status, i.error) for i in items
    ]
    assert run_progress(run)["percent"] == 100.0
    videos = Video.objects.filter(model=model, status=Video.Status.READY)
    assert videos.count() == 4
    for item in items:
        video = item.video
        assert video.seed == item.seed and video.generation_record["backend"] == backend
        assert video.generation_settings["steps"] == settings["steps"]
    first = {i.seed: i.video for i in items if i.prompt.position == 1}
    frames_1 = decode_video(media_root / first[1].original_file)
    frames_2 = decode_video(media_root / first[2].original_file)
    assert frames_1.shape == frames_2.shape and frames_1.shape[0] == settings["frames"]
    assert not (frames_1 == frames_2).all()  # another seed, another video

    assert plan_run(RunSpec(model=model, benchmark=bench, seeds=[3])).validated_by == "backend capabilities"
