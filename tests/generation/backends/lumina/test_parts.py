"""Lumina-Video's parts on tiny random weights: published key names, frame rule, sampler, motion guidance."""

import argparse

import pytest
import torch

from generation.backends import CheckpointError
from generation.backends.lumina import checkpoint as layout
from generation.backends.lumina.config import MULTI_SCALE, dit_config_from_args, parse_scales, scale_at
from generation.backends.lumina.sampler import Guidance, TextConditions, combine, time_grid, velocity
from generation.backends.lumina.tiny import TINY_MODEL_ARGS, tiny_dit, tiny_vae


def published_key_names(n_layers: int, combos: list[tuple[int, int]]) -> set[str]:
    """The DiT's state-dict names as the official MultiScaleNextDiT (and so the released file) has them."""
    names = {
        "pad_token",
        "cap_embedder.0.weight",
        "cap_embedder.0.bias",
        "cap_embedder.1.weight",
        "cap_embedder.1.bias",
    }
    for embedder in ("t_embedder", "motion_embedder"):
        names |= {f"{embedder}.mlp.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    for f_patch, patch in combos:
        key = f"{patch}-{f_patch}"
        names |= {f"all_x_embedder.{key}.weight", f"all_x_embedder.{key}.bias"}
        names |= {
            f"all_final_layer.{key}.{m}.{p}"
            for m in ("linear", "adaLN_modulation.1")
            for p in ("weight", "bias")
        }
    for i in range(n_layers):
        block = f"layers.{i}"
        names |= {f"{block}.attention.{w}.weight" for w in ("wq", "wk", "wv", "wk_y", "wv_y", "wo")}
        names |= {
            f"{block}.attention.{n}.{p}" for n in ("q_norm", "k_norm", "ky_norm") for p in ("weight", "bias")
        }
        names |= {f"{block}.attention.gate"}
        names |= {f"{block}.feed_forward.{w}.weight" for w in ("w1", "w2", "w3")}
        names |= {
            f"{block}.{n}.weight"
            for n in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2", "attention_y_norm")
        }
        names |= {f"{block}.adaLN_modulation.1.weight", f"{block}.adaLN_modulation.1.bias"}
    return names


def test_published_key_names_load_strictly(tiny_lumina):
    state = layout.read_state_dict(layout.dit_weights_path(tiny_lumina))
    combos = list(zip(TINY_MODEL_ARGS["f_patch_sizes"], TINY_MODEL_ARGS["patch_sizes"], strict=True))
    assert set(state) == published_key_names(TINY_MODEL_ARGS["n_layers"], combos)
    config = dit_config_from_args(layout.read_model_args(tiny_lumina), in_channels=16, cap_feat_dim=32)
    dit = layout.load_dit(state, config, device="cpu", dtype=torch.float32)
    assert torch.equal(dit.state_dict()["layers.1.attention.gate"], state["layers.1.attention.gate"])


def test_a_missing_or_unexpected_key_is_named(tiny_lumina):
    state = layout.read_state_dict(layout.dit_weights_path(tiny_lumina))
    config = dit_config_from_args(layout.read_model_args(tiny_lumina), in_channels=16, cap_feat_dim=32)
    missing = {k: v for k, v in state.items() if k != "layers.0.attention.wq.weight"}
    with pytest.raises(CheckpointError, match=r"layers\.0\.attention\.wq\.weight"):
        layout.load_dit(missing, config, device="cpu", dtype=torch.float32)
    with pytest.raises(CheckpointError, match="unexpected.*extra"):
        layout.load_dit({**state, "extra": torch.zeros(1)}, config, device="cpu", dtype=torch.float32)


def test_compiled_key_names_and_published_model_sizes(tmp_path):
    from generation.backends.lumina.tiny import make_tiny_lumina

    # the official loader strips torch.compile's `_orig_mod.`; so does ours
    state = layout.read_state_dict(
        layout.dit_weights_path(make_tiny_lumina(tmp_path / "c", compiled_names=True))
    )
    assert state and not any("_orig_mod" in k for k in state)
    published = argparse.Namespace(
        model="MultiScaleNextDiT_2B_GQA", qk_norm=True, patch_sizes=[2, 2, 4], f_patch_sizes=[1, 2, 2]
    )
    config = dit_config_from_args(published, in_channels=16, cap_feat_dim=2304)
    assert (config.dim, config.n_layers, config.n_heads, config.n_kv_heads) == (2304, 24, 16, 8)
    with pytest.raises(ValueError, match="unknown model"):
        dit_config_from_args(argparse.Namespace(model="Other"), in_channels=16, cap_feat_dim=8)


@pytest.mark.parametrize("frames", [8, 16])
def test_the_vae_decodes_frames_over_4_latent_frames_to_exactly_frames(frames):
    from generation.backends.lumina.backend import latent_frames_for

    vae = tiny_vae().eval()
    with torch.no_grad():
        video = vae.decode(torch.randn(1, 16, latent_frames_for(frames), 2, 2)).sample
    assert video.shape[2] == frames
    with torch.no_grad():  # an odd latent count loses 3 frames: why the frame rule is 8k, not 4k or 4k+1
        assert vae.decode(torch.randn(1, 16, 3, 2, 2)).sample.shape[2] == 9


def test_time_grid_is_shifted_toward_the_noise():
    plain, shifted = time_grid(4, 0.0), time_grid(4, 24.0)
    assert plain.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert shifted[0] == 0 and shifted[-1] == 1 and bool((shifted[1:-1] < plain[1:-1]).all())
    assert shifted[2].item() == pytest.approx(0.5 / (0.5 + 24 - 24 * 0.5))


def test_scales_parse_and_switch_with_time():
    scales = parse_scales(MULTI_SCALE)
    assert [(s.f_patch, s.patch) for s in (scale_at(scales, t) for t in (0.0, 0.03, 0.1, 0.125, 0.9))] == [
        (2, 4), (2, 2), (2, 2), (1, 2), (1, 2),
    ]  # fmt: skip
    for bad in ("2x", "2x4@0.1", "2x4,2x2@0.5,1x2@0.2", "1x2,2x2@1.5"):
        with pytest.raises(ValueError):
            parse_scales(bad)


def test_combine_is_the_documented_formula_and_renorm_caps_the_norm():
    positive, negative = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert torch.allclose(combine(positive, negative, 5.0, -1), positive + 5.0 * (positive - negative))
    capped = combine(positive, negative, 50.0, 2.0)
    norms = torch.linalg.vector_norm(capped.flatten(1), dim=1)
    assert torch.allclose(norms, 2.0 * torch.linalg.vector_norm(positive.flatten(1), dim=1), rtol=1e-5)
    assert torch.equal(combine(positive, None, 5.0, -1), positive)


@pytest.fixture(scope="module")
def dit_and_text():
    dit = tiny_dit(seed=1)
    generator = torch.Generator().manual_seed(0)
    text = TextConditions(
        torch.randn(1, 8, 32, generator=generator), torch.ones(1, 8, dtype=torch.bool),
        torch.randn(1, 5, 32, generator=generator), torch.ones(1, 5, dtype=torch.bool),
    )  # fmt: skip
    return dit, text, torch.randn(1, 16, 2, 4, 4, generator=generator)


def test_the_motion_score_conditions_the_dit_and_a_negative_one_drops_it(dit_and_text):
    dit, text, x = dit_and_text

    def run(score: float) -> torch.Tensor:
        with torch.no_grad():
            return dit(
                x,
                torch.tensor([0.5]),
                text.positive,
                text.positive_mask,
                torch.tensor([score]),
                f_patch=1,
                patch=2,
            )

    assert not torch.allclose(run(2.0), run(10.0))
    assert torch.equal(run(-1.0), run(-7.0))  # no motion condition: the embedding is zero
    assert not torch.allclose(run(-1.0), run(0.0))


def test_motion_guidance_is_applied_as_documented(dit_and_text):
    dit, text, x = dit_and_text
    guidance = Guidance(
        scale=4.0,
        until=0.2,
        renorm=-1,
        motion_score=6.0,
        negative_motion_score=2.0,
        negative_motion_until=0.05,
    )
    scales = parse_scales("1x2")

    def branch(t: float, caption, mask, score: float) -> torch.Tensor:
        with torch.no_grad():
            return dit(x, torch.tensor([t]), caption, mask, torch.tensor([score]), f_patch=1, patch=2)

    for t, negative_score in ((0.01, 2.0), (0.1, 6.0)):  # before and after negative_motion_until
        positive = branch(t, text.positive, text.positive_mask, 6.0)
        negative = branch(t, text.negative, text.negative_mask, negative_score)
        with torch.no_grad():
            got = velocity(dit, x, t, text, guidance, scales)
        assert torch.allclose(got, positive + 4.0 * (positive - negative), atol=1e-5)
    with torch.no_grad():  # after guidance_until only the prompt branch runs
        late = velocity(dit, x, 0.5, text, guidance, scales)
    assert torch.allclose(late, branch(0.5, text.positive, text.positive_mask, 6.0), atol=1e-6)
