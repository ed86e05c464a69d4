"""CLIP score on tiny open_clip models with random weights (built from a config; nothing is downloaded)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from metrics.video.clip_score import (  # noqa: E402
    ClipScorer,
    evenly_spaced_indices,
    load_clip_scorer,
)

# A CLIP with open_clip's own text transformer and its bundled BPE tokenizer (SimpleTokenizer), so the test
# needs neither transformers nor a hub.
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {}})
    )
    return folder


@pytest.fixture(scope="module")
def scorer(tiny_clip_dir) -> ClipScorer:
    return load_clip_scorer(f"local-dir:{tiny_clip_dir}", frames_per_batch=5)


def random_video(seed: int, frames: int = 20, height: int = 40, width: int = 56) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8))


def test_evenly_spaced_indices_follow_rounded_linspace():
    assert evenly_spaced_indices(16).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert evenly_spaced_indices(8).tolist() == list(range(8))
    assert evenly_spaced_indices(15).tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert evenly_spaced_indices(3).tolist() == [0, 1, 2]  # shorter than 8: every frame once
    assert evenly_spaced_indices(1).tolist() == [0]
    for num_frames in range(1, 300):
        indices = evenly_spaced_indices(num_frames)
        assert len(indices) == min(8, num_frames)
        assert indices[0] == 0 and indices[-1] == num_frames - 1
        assert np.all(np.diff(indices) > 0)
    with pytest.raises(ValueError):
        evenly_spaced_indices(0)


def test_loader_reads_the_weights_from_the_local_folder(scorer, tiny_clip_dir):
    saved = torch.load(tiny_clip_dir / "open_clip_pytorch_model.bin")
    loaded = scorer.model.state_dict()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)
    assert scorer.preprocess_cfg["size"] == 32


def test_preprocess_matches_open_clip_eval_transform(scorer):
    from PIL import Image

    transform = open_clip.transform.image_transform_v2(
        open_clip.transform.PreprocessCfg(**scorer.model.visual.preprocess_cfg), is_train=False
    )
    frames = random_video(1, frames=2, height=50, width=70)
    ours = scorer.preprocess(frames)
    reference = torch.stack([transform(Image.fromarray(frame.numpy())) for frame in frames])
    assert ours.shape == reference.shape == (2, 3, 32, 32)
    # Antialiased bicubic on uint8 tensors vs PIL: at most one uint8 level apart per pixel.
    one_level = 1 / 255 / min(scorer.preprocess_cfg["std"])
    assert (ours - reference).abs().max().item() <= one_level + 1e-5


def test_embeddings_are_normalized_with_the_expected_shapes(scorer):
    images = scorer.image_embeddings(random_video(2, frames=7))
    texts = scorer.text_embeddings(["a cat runs on the grass", "一只猫在草地上奔跑"])
    assert images.shape == (7, 16) and texts.shape == (2, 16)
    assert torch.allclose(images.norm(dim=-1), torch.ones(7), atol=1e-5)
    assert torch.allclose(texts.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_score_is_the_mean_cosine_over_the_sampled_frames(scorer):
    video, prompt = random_video(3), "a red car drives through the rain"
    sampled = video[evenly_spaced_indices(len(video))]
    with torch.no_grad():
        image_features = scorer.model.encode_image(scorer.preprocess(sampled))
        text_features = scorer.model.encode_text(scorer.tokenizer([prompt]))
    cosines = torch.nn.functional.cosine_similarity(image_features, text_features, dim=-1)
    assert cosines.shape == (8,)
    assert scorer.score(video, prompt) == pytest.approx(cosines.mean().item(), abs=1e-6)


def test_clipscore100_scale_clamps_each_frame_before_averaging(tiny_clip_dir, scorer):
    scaled = load_clip_scorer(f"local-dir:{tiny_clip_dir}", scale="clipscore100")
    video, prompt = random_video(4), "fireworks over a lake"
    images = scorer.image_embeddings(video[evenly_spaced_indices(len(video))])
    cosines = images @ scorer.text_embeddings([prompt])[0]
    expected = (100 * cosines.clamp(min=0)).mean().item()
    assert scaled.score(video, prompt) == pytest.approx(expected, abs=1e-4)
    with pytest.raises(ValueError):
        load_clip_scorer(f"local-dir:{tiny_clip_dir}", scale="x100")  # type: ignore[arg-type]


def test_scores_are_deterministic_and_batching_does_not_change_them(scorer):
    videos = [random_video(10), random_video(11, frames=5), random_video(12, frames=33, height=30, width=30)]
    prompts = ["a dog", "一只狗在雪地里", "a dog"]
    batched = scorer.score_batch(videos, prompts)
    assert scorer.score_batch(videos, prompts) == batched
    one_by_one = [scorer.score(video, prompt) for video, prompt in zip(videos, prompts, strict=True)]
    assert batched == pytest.approx(one_by_one, abs=1e-6)
    assert all(-1.0 <= value <= 1.0 for value in batched)


def test_rejects_frames_that_are_not_uint8_rgb(scorer):
    with pytest.raises(ValueError, match="uint8"):
        scorer.score(torch.zeros(4, 8, 8, 3), "x")
    with pytest.raises(ValueError, match="prompts"):
        scorer.score_batch([random_video(0)], [])


def test_xlm_roberta_text_tower_loads_from_a_local_folder(tmp_path):
    """The default model's loading path (HF text tower, local tokenizer files), on a tiny XLM-R."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    text_dir = tmp_path / "xlm-roberta"
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {
        token: i for i, token in enumerate(specials + list("一只猫在草地上奔跑狗abcdefghijklmnopqrstuvwxyz "))
    }
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    ).save_pretrained(text_dir)
    XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(text_dir)

    # Random weights for the real default architecture would be 350 MB; shrink it by saving a tiny
    # checkpoint of a model built with the same text_cfg override the loader applies.
    text_cfg = dict(open_clip.get_model_config("xlm-roberta-base-ViT-B-32")["text_cfg"])
    text_cfg.update(hf_model_name=str(text_dir), hf_tokenizer_name=str(text_dir), hf_model_pretrained=False)
    config = {"embed_dim": 8, "vision_cfg": TINY_CLIP_CONFIG["vision_cfg"], "text_cfg": text_cfg}
    torch.manual_seed(0)
    model = open_clip.CustomTextCLIP(**config)
    model_dir = tmp_path / "clip"
    model_dir.mkdir()
    torch.save(model.state_dict(), model_dir / "open_clip_pytorch_model.bin")
    # open_clip registers a config file under its stem, as it does its built-in configs.
    (model_dir / "tiny-xlm-roberta-clip-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(model_dir / "tiny-xlm-roberta-clip-test.json")

    scorer = load_clip_scorer(
        "tiny-xlm-roberta-clip-test",
        pretrained=None,
        checkpoint_path=model_dir / "open_clip_pytorch_model.bin",
        text_model_dir=text_dir,
    )
    tokens = scorer.tokenizer(["一只猫在草地上奔跑"])
    assert tokens.shape == (1, 77) and tokens[0, 0].item() == 0 and tokens[0, 1].item() == vocab["一"]
    saved = torch.load(model_dir / "open_clip_pytorch_model.bin")
    assert all(torch.equal(saved[key], value) for key, value in scorer.model.state_dict().items())
    score = scorer.score(random_video(5), "一只猫在草地上奔跑")
    assert -1.0 <= score <= 1.0


@pytest.mark.gpu
def test_scores_on_cuda_match_the_cpu(tiny_clip_dir, scorer):
    on_cuda = load_clip_scorer(f"local-dir:{tiny_clip_dir}", device="cuda")
    videos = [random_video(20), random_video(21, frames=11, height=64, width=48)]
    prompts = ["a boat", "一只鸟飞过天空"]
    assert on_cuda.preprocess(videos[0][:2]).device.type == "cuda"
    # Same float32 model; only kernel accumulation order differs.
    assert on_cuda.score_batch(videos, prompts) == pytest.approx(
        scorer.score_batch(videos, prompts), abs=1e-4
    )
