"""CLIP score of a video against its prompt, with a multilingual open_clip model (no Django).

Definition (one video, one prompt):
1. Sample `DEFAULT_NUM_FRAMES` = 8 frames at `evenly_spaced_indices(T, 8)`:
   `numpy.rint(numpy.linspace(0, T - 1, min(8, T))).astype(int)`, so the first and the last frame are
   always included and a clip shorter than 8 frames uses every frame once (never a frame twice).
2. Preprocess each frame as the model's open_clip eval transform does (resize the shortest side to the
   model's image size with antialiased bicubic on uint8, center crop, scale to [0, 1], normalize with the
   model's mean/std), but on tensors on the model's device; it matches open_clip's PIL transform to within
   one uint8 level per pixel.
3. Embed frames and prompt, L2-normalize, take the cosine between each frame and the prompt.
4. The score is the mean over the sampled frames of the per-frame value, where the per-frame value is:
   - `scale="cosine"` (default): the raw cosine, in [-1, 1] (the "CLIPSIM" of CogVideo / Make-A-Video
     tables, typically 0.2-0.35 for matching pairs);
   - `scale="clipscore100"`: 100 * max(cosine, 0), clamped per frame before averaging (torchmetrics'
     CLIPScore convention).

The default model is open_clip's `xlm-roberta-base-ViT-B-32` with the `laion5b_s13b_b90k` weights: a CLIP
whose text tower is XLM-RoBERTa (trained on LAION-5B's multilingual captions), because the benchmark's
prompts are Chinese. `xlm-roberta-large-ViT-H-14` / `frozen_laion5b_s13b_b90k` is the larger alternative.
Their text tower and tokenizer come from Hugging Face transformers (`pip install transformers`). Offline,
pass `checkpoint_path` (the open_clip weights file, e.g. `open_clip_pytorch_model.bin` from the hub repo
`laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k`) and `text_model_dir` (a folder with the
`xlm-roberta-base` `config.json` and tokenizer files: `tokenizer.json`, `tokenizer_config.json`, ...);
nothing is then fetched from a model hub. The pretrained tag still names the preprocessing (mean/std/...).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

DEFAULT_CLIP_MODEL = "xlm-roberta-base-ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion5b_s13b_b90k"
DEFAULT_NUM_FRAMES = 8
DEFAULT_FRAMES_PER_BATCH = 64

ScoreScale = Literal["cosine", "clipscore100"]
SCORE_SCALES: tuple[str, ...] = ("cosine", "clipscore100")


def evenly_spaced_indices(num_frames: int, count: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """Indices of `count` frames spread evenly over `num_frames` frames, first and last included.

    `rint(linspace(0, num_frames - 1, min(count, num_frames)))`. The indices are strictly increasing, so
    no frame counts twice: consecutive linspace points are at least 1 apart and rounding cannot merge them.
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    return np.rint(np.linspace(0, num_frames - 1, min(count, num_frames))).astype(np.int64)


def _as_frames_tensor(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got {tuple(frames.shape)} {frames.dtype}")
    return frames


class ClipScorer:
    """An open_clip model with its preprocessing and tokenizer, ready to score (frames, prompt) pairs.

    `model` is an open_clip CLIP/CustomTextCLIP (any device/dtype); `tokenizer` turns a list of strings
    into token ids; `preprocess_cfg` is open_clip's preprocessing dict (size, mean, std, interpolation,
    resize_mode), by default the one open_clip attached to `model.visual`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        preprocess_cfg: dict[str, Any] | None = None,
        scale: ScoreScale = "cosine",
        num_frames: int = DEFAULT_NUM_FRAMES,
        frames_per_batch: int = DEFAULT_FRAMES_PER_BATCH,
    ) -> None:
        if scale not in SCORE_SCALES:
            raise ValueError(f"scale must be one of {SCORE_SCALES}, got {scale!r}")
        self.model: Any = model.eval()  # open_clip CLIP / CustomTextCLIP
        self.tokenizer = tokenizer
        self.preprocess_cfg = _checked_preprocess_cfg(preprocess_cfg or _model_preprocess_cfg(model))
        self.scale: ScoreScale = scale
        self.num_frames = num_frames
        self.frames_per_batch = frames_per_batch

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def preprocess(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB -> (N, 3, S, S) normalized pixels on the model's device and dtype."""
        cfg = self.preprocess_cfg
        size = cfg["size"]
        interpolation = (
            InterpolationMode.BILINEAR
            if cfg.get("interpolation") == "bilinear"
            else InterpolationMode.BICUBIC
        )
        pixels = _as_frames_tensor(frames).to(self.device).permute(0, 3, 1, 2)
        if cfg.get("resize_mode", "shortest") == "squash":
            pixels = TF.resize(pixels, [size, size], interpolation=interpolation, antialias=True)
        else:
            pixels = TF.resize(pixels, [size], interpolation=interpolation, antialias=True)
            pixels = TF.center_crop(pixels, [size, size])
        pixels = TF.to_dtype(pixels, torch.float32, scale=True)
        pixels = TF.normalize(pixels, mean=list(cfg["mean"]), std=list(cfg["std"]))
        return pixels.to(self.dtype)

    @torch.no_grad()
    def image_embeddings(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """L2-normalized float32 embeddings (N, D) of (N, H, W, 3) uint8 frames, in chunks of frames_per_batch."""
        frames = _as_frames_tensor(frames)
        chunks = [
            self.preprocess(frames[start : start + self.frames_per_batch])
            for start in range(0, frames.shape[0], self.frames_per_batch)
        ]
        return self._embed_pixels(chunks)

    def _embed_pixels(self, pixel_chunks: list[torch.Tensor]) -> torch.Tensor:
        """Embed preprocessed pixels, re-chunked to frames_per_batch images per forward pass."""
        pixels = torch.cat(pixel_chunks)
        features = [
            self.model.encode_image(pixels[start : start + self.frames_per_batch])
            for start in range(0, pixels.shape[0], self.frames_per_batch)
        ]
        return torch.nn.functional.normalize(torch.cat(features).float(), dim=-1)

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """L2-normalized float32 embeddings (P, D) of the prompts."""
        tokens = self.tokenizer(list(prompts)).to(self.device)
        return torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def frame_scores(self, image_embeddings: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Per-frame values (N,) from normalized embeddings: cosine, or 100 * max(cosine, 0)."""
        cosine = image_embeddings @ text_embedding
        return cosine if self.scale == "cosine" else 100.0 * cosine.clamp(min=0)

    def score_batch(self, videos: Sequence[torch.Tensor | np.ndarray], prompts: Sequence[str]) -> list[float]:
        """CLIP score of each (video, prompt) pair; each video is (T, H, W, 3) uint8 RGB.

        Videos may differ in size and length. The sampled frames of all videos are embedded together (in
        forward passes of frames_per_batch images), the distinct prompts once each.
        """
        if len(videos) != len(prompts):
            raise ValueError(f"{len(videos)} videos but {len(prompts)} prompts")
        if not videos:
            return []
        pixels = []
        for video in videos:
            frames = _as_frames_tensor(video)
            pixels.append(self.preprocess(frames[evenly_spaced_indices(frames.shape[0], self.num_frames)]))
        with torch.no_grad():
            images = self._embed_pixels(pixels)
        counts = [len(video_pixels) for video_pixels in pixels]
        distinct_prompts = list(dict.fromkeys(prompts))
        texts = self.text_embeddings(distinct_prompts)
        text_row = {prompt: row for row, prompt in enumerate(distinct_prompts)}
        scores = []
        for video_images, prompt in zip(images.split(counts), prompts, strict=True):
            scores.append(float(self.frame_scores(video_images, texts[text_row[prompt]]).mean()))
        return scores

    def score(self, frames: torch.Tensor | np.ndarray, prompt: str) -> float:
        """CLIP score of one video (T, H, W, 3) uint8 RGB against its prompt."""
        return self.score_batch([frames], [prompt])[0]


def load_clip_scorer(
    model_name: str = DEFAULT_CLIP_MODEL,
    pretrained: str | None = DEFAULT_CLIP_PRETRAINED,
    *,
    checkpoint_path: str | Path | None = None,
    text_model_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    scale: ScoreScale = "cosine",
    num_frames: int = DEFAULT_NUM_FRAMES,
    frames_per_batch: int = DEFAULT_FRAMES_PER_BATCH,
) -> ClipScorer:
    """Build a ClipScorer from an open_clip model name and weights.

    - `model_name`: an open_clip built-in name (default `xlm-roberta-base-ViT-B-32`), or
      `local-dir:/folder` (a folder with `open_clip_config.json`, the weights and, for a Hugging Face text
      tower, the tokenizer files) or `hf-hub:org/repo`, both passed to open_clip unchanged.
    - `pretrained`: an open_clip pretrained tag of that model (default `laion5b_s13b_b90k`). Without
      `checkpoint_path` open_clip fetches the tag's weights (or finds them in the Hugging Face cache);
      with it, the tag only supplies the preprocessing (mean, std, interpolation, resize mode).
    - `checkpoint_path`: a local open_clip weights file (.bin/.pt/.safetensors); no download.
    - `text_model_dir`: a local Hugging Face folder (config.json + tokenizer files) that replaces the
      built-in config's `hf_model_name`/`hf_tokenizer_name` (e.g. `xlm-roberta-base`), so the text tower is
      built and the prompts tokenized without a hub.
    """
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg
    from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer

    schema_given = model_name.startswith(("local-dir:", "hf-hub:"))
    create_kwargs: dict[str, Any] = {"device": device, "precision": precision}
    if checkpoint_path is not None:
        if schema_given:
            raise ValueError(
                "checkpoint_path applies to built-in model names, not to local-dir:/hf-hub: names"
            )
        create_kwargs["pretrained"] = str(checkpoint_path)
        create_kwargs["pretrained_text"] = False  # the checkpoint holds the text tower; fetch nothing
        tag_cfg = get_pretrained_cfg(model_name, pretrained) if pretrained else {}
        if pretrained and not tag_cfg:
            raise ValueError(f"{pretrained!r} is not an open_clip pretrained tag of {model_name}")
        create_kwargs["force_preprocess_cfg"] = {
            key: tag_cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in tag_cfg
        }
    elif not schema_given:
        create_kwargs["pretrained"] = pretrained

    tokenizer: Any
    if text_model_dir is not None:
        if schema_given:
            raise ValueError(
                "text_model_dir applies to built-in model names, not to local-dir:/hf-hub: names"
            )
        text_cfg = copy.deepcopy(open_clip.get_model_config(model_name) or {}).get("text_cfg", {})
        if "hf_tokenizer_name" not in text_cfg:
            raise ValueError(f"{model_name} has no Hugging Face text tower, so text_model_dir does not apply")
        if "hf_model_name" in text_cfg:
            text_cfg["hf_model_name"] = str(text_model_dir)
            text_cfg["hf_model_pretrained"] = False
        text_cfg["hf_tokenizer_name"] = str(text_model_dir)
        create_kwargs["text_cfg"] = text_cfg
        tokenizer = HFTokenizer(
            str(text_model_dir),
            context_length=text_cfg.get("context_length", DEFAULT_CONTEXT_LENGTH),
            tokenizer_mode=text_cfg.get("tokenizer_mode"),
            **text_cfg.get("tokenizer_kwargs", {}),
        )
    else:
        tokenizer = open_clip.get_tokenizer(model_name)

    model = open_clip.create_model(model_name, **create_kwargs)
    return ClipScorer(model, tokenizer, scale=scale, num_frames=num_frames, frames_per_batch=frames_per_batch)


def _model_preprocess_cfg(model: torch.nn.Module) -> dict[str, Any]:
    from open_clip.model import get_model_preprocess_cfg

    return dict(get_model_preprocess_cfg(model))


def _checked_preprocess_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(cfg)
    size = cfg.get("size")
    if isinstance(size, list | tuple):
        if len(size) != 2 or size[0] != size[1]:
            raise ValueError(f"only square CLIP inputs are supported, got size {size}")
        size = size[0]
    cfg["size"] = int(size)  # type: ignore[arg-type]
    if cfg.get("resize_mode", "shortest") not in ("shortest", "squash"):
        raise ValueError(f"resize_mode {cfg['resize_mode']!r} is not supported (shortest, squash)")
    for key in ("mean", "std"):
        if key not in cfg:
            raise ValueError(f"the preprocessing config lacks {key!r}")
    return cfg
