"""Generation runs without a worker: what is checked before anything is queued, the plan's counts, the
one-row-per-video rule, retrying failed videos only. The batch handler runs in this process, on the
test-only plumbing backend (the videos' content is tested with the real tiny Wan in test_generation_worker)."""

import pytest

import generation.tasks  # noqa: F401  (registers the batch task for the eager runs)
from evalsite.models import Job
from generation.backends import BACKENDS, register
from generation.models import GenerationItem, GenerationRun, Refusal, Video, VideoModel
from generation.runs.planning import RunSpec, plan_run, retry_failed, run_progress, start_run
from generation.services import GenerationError

from .plumbing_backend import TARGET, make_checkpoint

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def plumbing_backend():
    register("plumbing", TARGET)
    yield
    BACKENDS.pop("plumbing", None)


@pytest.fixture
def bench(make_benchmark):
    return make_benchmark(["a cat on grass", "a red car at night REJECT", "a boat on a lake"])


@pytest.fixture
def model(tmp_path):
    return VideoModel.objects.create(
        name="Plumb", backend="plumbing", checkpoint=str(make_checkpoint(tmp_path / "ckpt"))
    )


def spec(model, bench, **kwargs):
    return RunSpec(model=model, benchmark=bench, **{"seeds": [1, 2], **kwargs})


def test_plan_counts_prompts_seeds_and_grid(model, bench):
    plan = plan_run(
        spec(model, bench, prompt_positions=[1, 3], grid={"steps": [2, 3], "guidance_scale": [1, 5]})
    )
    report = plan.report()
    assert (
        report["prompts"] == 2
        and report["videos"] == 2 * 2 * 4
        and report["validated_by"] == "backend capabilities"
    )
    assert report["total_steps"] == 2 * 2 * 2 * (2 + 3)
    assert {p["steps"] for p in report["settings_points"]} == {2, 3}
    assert all(
        p["height"] == 32 and p["frames"] == 5 for p in report["settings_points"]
    )  # defaults filled in


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"checkpoint": "/no/such/folder"}, "does not exist"),
        ({"checkpoint": "EMPTY"}, "has no plumbing.json"),
        ({"backend": "nope"}, "unknown backend"),
        ({"settings": {"frames": 6}}, "frames: 6 does not follow this model's frame rule 4k+1"),
        ({"settings": {"steps": 0}}, "steps: 0 is below the minimum"),
        ({"settings": {"sampler": "x"}}, "sampler: unknown setting"),
        ({"grid": {"steps": []}}, "grid: steps needs a non-empty list"),
        ({"seeds": [], "noise_ids": []}, "give exactly one of"),
        ({"categories": ["Nope"]}, "has no category ['Nope']"),
        ({"prompt_positions": [9]}, "no prompt at position(s) [9]"),
    ],
)
def test_bad_input_is_a_clear_error_before_anything_is_queued(model, bench, tmp_path, change, message):
    kwargs = {k: v for k, v in change.items() if k not in ("checkpoint", "backend")}
    if "checkpoint" in change:
        model.checkpoint = (
            str(tmp_path / "empty") if change["checkpoint"] == "EMPTY" else change["checkpoint"]
        )
        (tmp_path / "empty").mkdir()
    if "backend" in change:
        model.backend = change["backend"]
    model.save()
    with pytest.raises(GenerationError, match=__import__("re").escape(message)):
        start_run(spec(model, bench, **kwargs))
    assert not GenerationRun.objects.exists() and not Job.objects.exists()


def test_a_run_fills_the_library_once_and_retries_only_failed_videos(
    model, bench, django_capture_on_commit_callbacks, celery_eager
):
    with django_capture_on_commit_callbacks(execute=True):
        run = start_run(spec(model, bench, settings={"steps": 3}, batch_size=2))
    run.refresh_from_db()
    items = {(i.prompt.position, i.seed): i for i in run.items.select_related("prompt", "video")}
    assert len(items) == 6 and Job.objects.filter(queue="gpu").count() == 3
    assert {k for k, i in items.items() if i.status == GenerationItem.Status.REFUSED} == {(2, 1), (2, 2)}
    assert Refusal.objects.filter(model=model, prompt__position=2).exists()
    done = [i for i in items.values() if i.status == GenerationItem.Status.DONE]
    assert len(done) == 4 and all(i.steps_done == i.steps_total == 3 for i in done)
    video = items[(1, 2)].video
    assert video.status == Video.Status.READY and video.source == Video.Source.GENERATION
    assert (
        video.seed == 2 and video.generation_settings["steps"] == 3 and video.generation_settings["fps"] == 8
    )
    assert (
        video.generation_record["backend"] == "plumbing"
        and video.generation_record["checkpoint"] == model.checkpoint
    )
    assert (
        "torch" in video.generation_record["versions"] and video.settings_hash == items[(1, 2)].settings_hash
    )
    assert run.status == GenerationRun.Status.DONE_WITH_PROBLEMS and run_progress(run)["percent"] == 100.0

    with pytest.raises(GenerationError, match="nothing to generate: all 6 videos are already planned"):
        start_run(spec(model, bench, settings={"steps": 3}))
    with pytest.raises(GenerationError, match="no failed videos"):
        retry_failed(run)

    GenerationItem.objects.filter(pk=items[(3, 1)].pk).update(status=GenerationItem.Status.FAILED, video=None)
    with django_capture_on_commit_callbacks(execute=True):
        retry_failed(run)
    retried = GenerationItem.objects.get(pk=items[(3, 1)].pk)
    # the video made before is linked again, not made twice
    assert retried.status == GenerationItem.Status.DONE and retried.video_id == items[(3, 1)].video_id
    assert Video.objects.filter(model=model).count() == 4


def test_a_bad_checkpoint_folder_is_refused_before_anything_is_queued(bench, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text(
        '{"_class_name": "WanPipeline", "vae": ["diffusers", "AutoencoderKLWan"]}'
    )
    model = VideoModel.objects.create(name="Broken", backend="diffusers", checkpoint=str(tmp_path / "broken"))
    with pytest.raises(GenerationError, match="is incomplete, missing: vae/"):
        start_run(RunSpec(model=model, benchmark=bench, prompt_positions=[1], seeds=[1]))
    assert not GenerationRun.objects.exists()


def test_a_tuned_model_is_its_base_checkpoint_plus_an_adapter(model, bench, tmp_path):
    adapter = tmp_path / "lora"
    adapter.mkdir()
    tuned = VideoModel.objects.create(
        name="Plumb DPO", backend="plumbing", base_model=model, adapter=str(adapter)
    )
    run = start_run(spec(tuned, bench, prompt_positions=[1]))
    assert (run.checkpoint, run.adapter) == (model.checkpoint, str(adapter))
    tuned.adapter = str(tmp_path / "missing")
    tuned.save()
    with pytest.raises(GenerationError, match="adapter .*missing does not exist"):
        plan_run(spec(tuned, bench))


def test_a_backend_without_a_config_reader_is_checked_by_what_a_worker_recorded(bench, tmp_path):
    from generation.runs.planning import record_capabilities

    from .plumbing_backend import UNCHECKED_TARGET, PlumbingBackend

    register("plumbing-unchecked", UNCHECKED_TARGET)
    try:
        model = VideoModel.objects.create(
            name="Unchecked", backend="plumbing-unchecked", checkpoint=str(make_checkpoint(tmp_path / "u"))
        )
        bad = spec(model, bench, prompt_positions=[1], settings={"frames": 6})
        assert plan_run(bad).validated_by == "worker"  # nothing known yet: the worker checks it
        record_capabilities(model, PlumbingBackend.capabilities_for(tmp_path / "u"))
        with pytest.raises(GenerationError, match="frames: 6 does not follow this model's frame rule 4k\\+1"):
            plan_run(bad)
        assert plan_run(spec(model, bench, prompt_positions=[1])).validated_by == (
            "capabilities recorded by a worker"
        )
        model.checkpoint = str(make_checkpoint(tmp_path / "other"))  # another checkpoint: the record is stale
        model.save()
        assert plan_run(bad).validated_by == "worker"
    finally:
        BACKENDS.pop("plumbing-unchecked", None)
