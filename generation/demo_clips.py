"""Synthetic, clearly-labelled demo clips: coloured shapes moving over a gradient, with a "DEMO" label.

A clip's scene (background, shapes, colours, speeds) depends only on its seed; its kind decides which
temporal defect it shows, so the same seed rendered as two kinds differs only by that defect:
- "smooth": every shape moves at constant speed (bouncing off the edges);
- "dropped_frames": a few moments are skipped, so shapes jump ahead by several frames' worth of motion;
- "frozen": a stretch of identical frames, after which the motion resumes where it stopped;
- "jitter": every frame, each shape is displaced by a few pixels of random noise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .video_writer import write_frames

CLIP_KINDS = ("smooth", "dropped_frames", "frozen", "jitter")
DEMO_LABEL = "DEMO - synthetic clip"  # just "DEMO" where the frame is too narrow
CLEAN_MODEL_KINDS = ("smooth", "smooth", "smooth", "jitter", "smooth", "smooth")
DEFECTIVE_MODEL_KINDS = ("dropped_frames", "smooth", "frozen", "jitter", "dropped_frames", "frozen")

_SHAPES_PER_CLIP = 3
_FRAMES_SKIPPED_PER_DROP = 4
_JITTER_PIXELS = 3.0


def render_clip(
    kind: str, *, seed: int, width: int = 320, height: int = 192, fps: int = 24, seconds: float = 2
) -> np.ndarray:
    """Frames of one demo clip, shape (T, H, W, 3), dtype uint8, T = round(fps * seconds)."""
    if kind not in CLIP_KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; expected one of {', '.join(CLIP_KINDS)}")
    frame_count = round(fps * seconds)
    if frame_count < 8 or width < 16 or height < 16:
        raise ValueError("a demo clip needs at least 8 frames and 16x16 pixels")
    scene_rng = np.random.default_rng([seed, 0])
    defect_rng = np.random.default_rng([seed, 1 + CLIP_KINDS.index(kind)])

    background = _gradient(scene_rng, width, height)
    shapes = _random_shapes(scene_rng, width, height, fps)
    timeline = _timeline(kind, frame_count, defect_rng)
    label_rows, label_columns, label_box, label_text = _label_masks(width, height)

    frames = np.empty((frame_count, height, width, 3), dtype=np.uint8)
    for index, scene_time in enumerate(timeline):
        canvas = background.copy()
        for shape in shapes:
            cx, cy = _position(shape, scene_time, width, height)
            if kind == "jitter":
                shake_x, shake_y = defect_rng.normal(0.0, _JITTER_PIXELS, 2)
                cx, cy = cx + shake_x, cy + shake_y
            _paint(canvas, shape, cx, cy)
        label_area = canvas[label_rows, label_columns]
        label_area *= 1.0 - 0.6 * label_box[..., None]
        label_area += label_text[..., None] * (255.0 - label_area)
        frames[index] = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return frames


def write_clip(frames: np.ndarray, path: str | os.PathLike[str], fps: int | Fraction) -> None:
    """Encode (T, H, W, 3) uint8 frames (even H and W) as an H.264/yuv420p MP4."""
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError("frames must be a (T, H, W, 3) uint8 array")
    _count, height, width, _channels = frames.shape
    if width % 2 or height % 2:
        raise ValueError("H.264 in yuv420p needs even width and height")
    write_frames(path, frames, rate=fps, crf=18, preset="veryfast", container_format="mp4")


def demo_plan(
    prompts: Sequence[object],
    models: Sequence[str] = ("Demo model A", "Demo model B"),
    seeds: Sequence[int] = (0, 1),
) -> list[tuple[int, str, int, str]]:
    """(prompt_index, model, seed, kind) for every prompt x model x seed. The first model is mostly smooth
    (an occasional jitter); the others cycle through the defects with an occasional smooth clip."""
    plan = []
    for prompt_index in range(len(prompts)):
        for model_index, model in enumerate(models):
            kinds = CLEAN_MODEL_KINDS if model_index == 0 else DEFECTIVE_MODEL_KINDS
            for seed_index, seed in enumerate(seeds):
                slot = prompt_index * len(seeds) + seed_index + model_index
                plan.append((prompt_index, model, seed, kinds[slot % len(kinds)]))
    return plan


def _gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    top, bottom = rng.uniform(20, 110, 3), rng.uniform(20, 110, 3)
    blend = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = top * (1 - blend) + bottom * blend
    return np.broadcast_to(column, (height, width, 3)).astype(np.float32)


def _random_shapes(rng: np.random.Generator, width: int, height: int, fps: int) -> list[dict]:
    shapes = []
    small_side = min(width, height)
    for _ in range(_SHAPES_PER_CLIP):
        size = rng.uniform(0.08, 0.16) * small_side
        speed = rng.uniform(0.25, 0.5) * width / fps  # pixels per frame: a quarter to half the width a second
        angle = rng.uniform(0, 2 * np.pi)
        shapes.append(
            {
                "kind": rng.choice(["circle", "square"]),
                "size": size,
                "colour": rng.uniform(140, 255, 3).astype(np.float32),
                "start": (rng.uniform(size, width - size), rng.uniform(size, height - size)),
                "velocity": (speed * np.cos(angle), speed * np.sin(angle)),
            }
        )
    return shapes


def _timeline(kind: str, frame_count: int, rng: np.random.Generator) -> list[int]:
    """Which moment of the smooth motion each output frame shows."""
    if kind == "dropped_frames":
        drops = set(
            rng.choice(np.arange(2, frame_count - 1), size=max(1, frame_count // 12), replace=False).tolist()
        )
        timeline, moment = [], 0
        for index in range(frame_count):
            if index in drops:
                moment += _FRAMES_SKIPPED_PER_DROP
            timeline.append(moment)
            moment += 1
        return timeline
    if kind == "frozen":
        length = max(2, frame_count // 4)
        start = int(rng.integers(1, frame_count - length))
        return [index if index < start else max(start, index - length) for index in range(frame_count)]
    return list(range(frame_count))


def _position(shape: dict, moment: float, width: int, height: int) -> tuple[float, float]:
    """Constant velocity, reflected at the edges so the shape stays in view."""
    size, (start_x, start_y), (velocity_x, velocity_y) = shape["size"], shape["start"], shape["velocity"]
    return (
        _reflect(start_x + velocity_x * moment, size, width - size),
        _reflect(start_y + velocity_y * moment, size, height - size),
    )


def _reflect(value: float, low: float, high: float) -> float:
    span = high - low
    offset = (value - low) % (2 * span)
    return low + (offset if offset <= span else 2 * span - offset)


def _paint(canvas: np.ndarray, shape: dict, cx: float, cy: float) -> None:
    """Blend the shape into the canvas with anti-aliased coverage (a one-pixel soft edge, so sub-pixel
    motion stays smooth), touching only the pixels around it."""
    size, height, width = shape["size"], canvas.shape[0], canvas.shape[1]
    x0, x1 = max(0, int(cx - size - 1)), min(width, int(cx + size + 2))
    y0, y1 = max(0, int(cy - size - 1)), min(height, int(cy + size + 2))
    if x0 >= x1 or y0 >= y1:
        return
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    if shape["kind"] == "circle":
        distance = np.sqrt(xs * xs + ys * ys) - size
    else:
        distance = np.maximum(np.abs(xs), np.abs(ys)) - size
    coverage = np.clip(0.5 - distance, 0.0, 1.0)[..., None]
    region = canvas[y0:y1, x0:x1]
    region += coverage * (shape["colour"] - region)


@cache
def _label_masks(width: int, height: int) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Where the label sits (rows, columns), and the coverage of its dark backing box and of its white
    text there, each in [0, 1]."""
    font_size = max(10, height // 12)
    font = ImageFont.load_default(size=font_size)
    margin = max(4, font_size // 2)
    box, text = Image.new("L", (width, height), 0), Image.new("L", (width, height), 0)
    label = DEMO_LABEL
    left, top, right, bottom = ImageDraw.Draw(text).textbbox((margin, margin), label, font=font)
    if right > width - margin:
        label = "DEMO"
        left, top, right, bottom = ImageDraw.Draw(text).textbbox((margin, margin), label, font=font)
    padding = max(2, font_size // 4)
    left, top = max(0, left - padding), max(0, top - padding)
    right, bottom = min(width - 1, right + padding), min(height - 1, bottom + padding)
    ImageDraw.Draw(box).rectangle((left, top, right, bottom), fill=255)
    ImageDraw.Draw(text).text((margin, margin), label, fill=255, font=font)
    rows, columns = slice(top, bottom + 1), slice(left, right + 1)
    box_mask, text_mask = (
        np.asarray(image, dtype=np.float32)[rows, columns] / 255.0 for image in (box, text)
    )
    box_mask.setflags(write=False)
    text_mask.setflags(write=False)
    return rows, columns, box_mask, text_mask
