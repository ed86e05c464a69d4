"""Demo content for newcomers: two clearly-labelled demo models whose videos are synthetic clips
rendered by generation.demo_clips (moving shapes; model B's have dropped, frozen or jittery frames)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.db import transaction

from .demo_clips import demo_plan, render_clip, write_clip
from .models import Benchmark, Video, VideoModel
from .services import add_video, process_video

DEMO_MODELS = ("Demo model A", "Demo model B")
DEMO_DESCRIPTION = "Synthetic demo clips rendered by the site (moving shapes), not a real video model."
DEMO_PROMPTS = 8


def load_demo(benchmark: Benchmark, *, prompts: int = DEMO_PROMPTS, seeds: tuple[int, ...] = (0, 1)) -> dict:
    """Create the demo models and their clips for the first `prompts` prompts. Running it again adds nothing."""
    with transaction.atomic():
        models = {}
        for name in DEMO_MODELS:
            models[name], _ = VideoModel.objects.get_or_create(
                name=name,
                version="",
                defaults={"kind": VideoModel.Kind.DEMO, "description": DEMO_DESCRIPTION},
            )
    chosen = list(benchmark.prompts.order_by("position")[:prompts])
    created = 0
    with tempfile.TemporaryDirectory(prefix="evalsite-demo-") as tmp:
        for index, model_name, seed, kind in demo_plan(chosen, models=DEMO_MODELS, seeds=seeds):
            prompt, model = chosen[index], models[model_name]
            if Video.objects.filter(model=model, prompt=prompt, seed=seed).exists():
                continue
            path = Path(tmp) / f"clip-{index}-{seed}.mp4"
            write_clip(render_clip(kind, seed=seed * 1000 + prompt.position), path, fps=24)
            video, new = add_video(
                model=model,
                prompt=prompt,
                source_path=path,
                original_name=path.name,
                source=Video.Source.DEMO,
                seed=seed,
                noise_id=f"demo-noise-{prompt.position}-{seed}",
                generation_settings={"demo_kind": kind},
            )
            process_video(video)
            created += int(new)
    return {"models": list(DEMO_MODELS), "videos_created": created}
