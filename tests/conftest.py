import os
from pathlib import Path

import pytest

# Campaigns with real videos, for the annotation, results and preference tests.
pytest_plugins = ["tests.campaign_fixtures"]

SHARED_BENCHMARKS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks"


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests without CUDA. With EVALSITE_ONLY_DB_TESTS=1 (the PostgreSQL pass), keep only the
    tests that touch the database."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items:
        import torch

        if not torch.cuda.is_available():
            for item in gpu_items:
                item.add_marker(
                    pytest.mark.skip(reason="needs a CUDA device (run with -m gpu on a GPU machine)")
                )
    if os.environ.get("EVALSITE_ONLY_DB_TESTS") != "1":
        return
    db_fixtures = {"db", "transactional_db", "django_db_setup", "client", "admin_client", "live_server"}
    keep, drop = [], []
    for item in items:
        uses_db = item.get_closest_marker("django_db") is not None or db_fixtures & set(
            getattr(item, "fixturenames", ())
        )
        (keep if uses_db else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def shared_benchmarks() -> Path:
    if not SHARED_BENCHMARKS.is_dir():
        pytest.fail(
            f"the prompt files are expected in {SHARED_BENCHMARKS} (../shared/benchmarks beside the checkout)"
        )
    return SHARED_BENCHMARKS


@pytest.fixture(autouse=True)
def media_root(request, tmp_path):
    """Every test stores media in its own folder."""
    if not request.config.pluginmanager.hasplugin("django"):
        return None
    settings = request.getfixturevalue("settings")
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EVALSITE_IMPORT_ROOTS = [tmp_path / "imports"]
    (tmp_path / "imports").mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def celery_eager():
    """Run Celery tasks inline in this process (for tests that are not about the worker)."""
    from evalsite.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def write_test_video(
    path: Path,
    *,
    frames: int = 12,
    width: int = 64,
    height: int = 48,
    fps: int = 12,
    seed: int = 0,
    title: str | None = None,
    codec: str = "libx264",
) -> Path:
    """A small real video: moving noise blocks, different for every seed (so files differ in content)."""
    import numpy as np

    from generation.video_writer import write_frames

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"title": title, "comment": title} if title else None
    frames_ = (np.roll(base, 2 * i, axis=1) for i in range(frames))
    write_frames(
        path,
        frames_,
        rate=fps,
        width=width,
        height=height,
        codec=codec,
        crf=None,
        preset=None,
        metadata=metadata,
    )
    return path


@pytest.fixture
def make_video():
    return write_test_video


@pytest.fixture
def make_benchmark(tmp_path):
    """A benchmark loaded from a one-prompt-per-line file, through the real loader."""
    from generation.services import load_benchmark

    def make(prompts: list[str], slug: str = "tiny", name: str | None = None):
        path = tmp_path / f"{slug}.txt"
        path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
        return load_benchmark(path, fmt="lines", slug=slug, name=name).benchmark

    return make
