"""Video-DPO on a tiny random-weight WanTransformer3DModel: the reference is the base, a short run learns a
synthetic preference (chosen = temporally smooth latents), resume, adapter save/reload, a Step-Video-style
network through its adapter function, the failure-mode watch, and bad latents folders."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from preference.training.video_dpo import (
    DIFFUSERS_ADAPTER,
    ChosenErrorWatch,
    DPOConfig,
    PairLatents,
    TrainingDataError,
    VideoDPOTrainer,
    latest_checkpoint,
    load_adapter,
    read_index,
    stepvideo_adapter,
    write_pair_latents,
)

from .conftest import LATENT_SHAPE, TEXT_SHAPE, tiny_wan


def _config(**overrides) -> DPOConfig:
    settings = dict(
        beta=100.0,
        learning_rate=1e-3,
        max_steps=20,
        batch_size=2,
        lora_rank=4,
        lora_alpha=4,
        mixed_precision="no",
        gradient_checkpointing=True,
        checkpoint_every=0,
        validate_every=0,
    )
    return DPOConfig(**(settings | overrides))


def _trainer(folder, output, network=None, **overrides) -> VideoDPOTrainer:
    return VideoDPOTrainer(
        network if network is not None else tiny_wan(),
        DIFFUSERS_ADAPTER,
        _config(**overrides),
        PairLatents(folder, "train"),
        output,
        validation_data=PairLatents(folder, "validation"),
    )


def _probe():
    generator = torch.Generator().manual_seed(123)
    return {
        "hidden_states": torch.randn(2, *LATENT_SHAPE, generator=generator),
        "timestep": torch.tensor([300.0, 800.0]),
        "encoder_hidden_states": torch.randn(2, *TEXT_SHAPE, generator=generator),
        "return_dict": False,
    }


def test_a_short_run_learns_the_preference_and_the_reference_stays_the_base(synthetic_pairs, tmp_path):
    base = tiny_wan()
    untouched = copy.deepcopy(base)
    trainer = _trainer(synthetic_pairs, tmp_path / "run", network=base)
    before_train, before_validation = trainer.evaluate(trainer.train_data), trainer.evaluate()
    assert before_train["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy = reference at the start

    steps = [trainer.train_step() for _ in range(20)]

    after_train, after_validation = trainer.evaluate(trainer.train_data), trainer.evaluate()
    assert after_train["implicit_accuracy"] > 0.5 and after_train["loss"] < before_train["loss"] - 0.05
    assert after_validation["implicit_accuracy"] > 0.5  # held out, by prompt
    assert after_validation["loss"] < before_validation["loss"]
    assert steps[-1]["implicit_accuracy"] > 0.5

    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == list(range(1, 21))
    for name in (
        "loss", "implicit_accuracy", "margin", "policy_chosen_error", "policy_rejected_error",
        "reference_chosen_error", "reference_rejected_error", "grad_norm", "learning_rate",
    ):  # fmt: skip
        assert name in logged[-1]
    assert logged[-1]["policy_chosen_error"] != logged[-1]["reference_chosen_error"]

    probe = _probe()
    with torch.no_grad():
        trained = trainer.model(**probe)[0]
        with trainer.peft_model.disable_adapter():
            disabled = trainer.model(**probe)[0]
        expected = untouched(**probe)[0]
    assert not torch.allclose(trained, expected, atol=1e-5)  # the adapters did change the network
    torch.testing.assert_close(disabled, expected, rtol=0, atol=1e-6)


def test_resume_gives_the_next_step_loss_of_an_uninterrupted_run(synthetic_pairs, tmp_path):
    settings = dict(warmup_steps=4, max_steps=6)
    straight = _trainer(synthetic_pairs, tmp_path / "straight", **settings)
    losses = [straight.train_step()["loss"] for _ in range(5)]

    interrupted = _trainer(synthetic_pairs, tmp_path / "interrupted", **settings)
    for _ in range(3):
        interrupted.train_step()
    checkpoint = interrupted.save_checkpoint()
    assert latest_checkpoint(tmp_path / "interrupted") == checkpoint
    interrupted.train_step()  # progress after the checkpoint is lost with the crash
    del interrupted

    resumed = _trainer(synthetic_pairs, tmp_path / "interrupted", network=tiny_wan())
    assert resumed.resume(checkpoint) == 3
    fourth = resumed.train_step()
    assert fourth["step"] == 4
    assert fourth["loss"] == pytest.approx(losses[3], rel=1e-6, abs=1e-7)
    assert fourth["learning_rate"] == pytest.approx(1e-3 * 3 / 4)  # the warm-up went on where it stopped
    assert resumed.train_step()["loss"] == pytest.approx(losses[4], rel=1e-6, abs=1e-7)


def test_the_saved_adapter_loads_onto_a_fresh_base_with_the_same_outputs(synthetic_pairs, tmp_path):
    trainer = _trainer(synthetic_pairs, tmp_path / "run", max_steps=4)
    result = trainer.fit()
    assert not result["stopped"] and len(result["validation"]) == 1
    adapter_dir = tmp_path / "run" / "final" / "adapter"
    assert (adapter_dir / "adapter_config.json").is_file()
    assert (adapter_dir / "adapter_model.safetensors").is_file()

    probe = _probe()
    with torch.no_grad():
        trained = trainer.model(**probe)[0]
        reloaded = load_adapter(tiny_wan(), adapter_dir)
        through_peft = reloaded(**probe)[0]
        merged = reloaded.merge_and_unload()(**probe)[0]  # a plain WanTransformer3DModel again
        plain = tiny_wan()(**probe)[0]
    assert not torch.allclose(trained, plain, atol=1e-5)
    torch.testing.assert_close(through_peft, trained, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(merged, trained, rtol=1e-4, atol=1e-5)


def test_fit_stops_when_asked_and_resumes_from_its_checkpoint(synthetic_pairs, tmp_path):
    calls = []
    trainer = _trainer(synthetic_pairs, tmp_path / "run", max_steps=5)
    trainer.should_stop = lambda: len(calls) >= 2
    trainer.on_step = calls.append
    result = trainer.fit()
    assert result["stopped"] and trainer.step == 2 and [row["step"] for row in calls] == [1.0, 2.0]
    again = _trainer(synthetic_pairs, tmp_path / "run", max_steps=5)
    assert again.resume(latest_checkpoint(tmp_path / "run")) == 2
    assert not again.fit()["stopped"] and again.step == 5


class ToyStepVideoDiT(nn.Module):
    """A stand-in with Step-Video's calling shape: latents (B, F, C, H, W), timestep, two text embeddings."""

    def __init__(self, channels: int = 4, text_dim: int = 16, width: int = 32):
        super().__init__()
        self.proj_in = nn.Linear(channels, width)
        self.time = nn.Linear(1, width)
        self.to_q = nn.Linear(width, width)
        self.to_k = nn.Linear(text_dim, width)
        self.to_v = nn.Linear(text_dim, width)
        self.proj_out = nn.Linear(width, channels)

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_2):
        b, f, c, h, w = hidden_states.shape
        tokens = self.proj_in(hidden_states.permute(0, 1, 3, 4, 2).reshape(b, f * h * w, c))
        tokens = tokens + self.time(timestep.reshape(b, 1, 1).to(tokens.dtype) / 1000)
        text = torch.cat([encoder_hidden_states, encoder_hidden_states_2], dim=1)
        attention = torch.softmax(self.to_q(tokens) @ self.to_k(text).transpose(1, 2) / 32**0.5, dim=-1)
        out = self.proj_out(tokens + attention @ self.to_v(text))
        return out.reshape(b, f, h, w, c).permute(0, 1, 4, 2, 3)


def stepvideo_forward(network, latents, t, conditioning):
    """Step-Video's layout is (B, F, C, H, W); its timestep here is 1000 * t."""
    velocity = network(
        latents.permute(0, 2, 1, 3, 4),
        t * 1000,
        conditioning["encoder_hidden_states"],
        conditioning["encoder_hidden_states_2"],
    )
    return velocity.permute(0, 2, 1, 3, 4)


def test_a_step_video_style_network_plugs_in_through_its_adapter_function(tmp_path):
    folder = tmp_path / "latents"
    generator = torch.Generator().manual_seed(0)
    from .conftest import smooth_and_jittery

    for index in range(6):
        chosen, rejected = smooth_and_jittery(generator)
        write_pair_latents(
            folder,
            record_id=f"s{index}",
            prompt=f"p{index}",
            split="train",
            chosen=chosen,
            rejected=rejected,
            conditioning={
                "encoder_hidden_states": torch.randn(3, 16, generator=generator),
                "encoder_hidden_states_2": torch.randn(2, 16, generator=generator),
            },
        )
    torch.manual_seed(0)
    trainer = VideoDPOTrainer(
        ToyStepVideoDiT(),
        stepvideo_adapter(stepvideo_forward, lora_target_modules=("to_q", "to_k", "to_v")),
        _config(gradient_checkpointing=False, learning_rate=3e-3),
        PairLatents(folder),
        tmp_path / "run",
    )
    before = trainer.evaluate(trainer.train_data)
    for _ in range(20):
        trainer.train_step()
    after = trainer.evaluate(trainer.train_data)
    assert after["loss"] < before["loss"] and after["implicit_accuracy"] > 0.5


def test_the_watch_warns_when_the_chosen_error_rises_with_the_rejected_one():
    watch = ChosenErrorWatch(window=10)
    warnings = [watch.update(0.01 * i, 0.02 * i) for i in range(10)]
    assert warnings[:-1] == [None] * 9 and "keeps rising" in warnings[-1]
    falling = ChosenErrorWatch(window=10)
    assert all(falling.update(-0.01 * i, 0.02 * i) is None for i in range(30))  # the healthy case


def test_bad_latents_folders_are_refused_with_a_reason(tmp_path):
    with pytest.raises(TrainingDataError, match="index.jsonl"):
        PairLatents(tmp_path)
    latents = torch.zeros(*LATENT_SHAPE)
    text = {"encoder_hidden_states": torch.zeros(*TEXT_SHAPE)}
    write_pair_latents(
        tmp_path,
        record_id="a",
        prompt="A cat",
        split="train",
        chosen=latents,
        rejected=latents,
        conditioning=text,
    )
    write_pair_latents(
        tmp_path,
        record_id="b",
        prompt="a  CAT",
        split="validation",
        chosen=latents,
        rejected=latents,
        conditioning=text,
    )
    with pytest.raises(TrainingDataError, match="both splits"):
        read_index(tmp_path)
    with pytest.raises(TrainingDataError, match="C, F, H, W"):
        write_pair_latents(
            tmp_path,
            record_id="c",
            prompt="x",
            split="train",
            chosen=latents[0],
            rejected=latents[0],
            conditioning=text,
        )
    with pytest.raises(TrainingDataError, match="record ids"):
        write_pair_latents(
            tmp_path,
            record_id="../x",
            prompt="x",
            split="train",
            chosen=latents,
            rejected=latents,
            conditioning=text,
        )


def test_ties_are_kept_in_the_index_and_skipped_by_training(tmp_path):
    latents = torch.zeros(*LATENT_SHAPE)
    text = {"encoder_hidden_states": torch.zeros(*TEXT_SHAPE)}
    write_pair_latents(
        tmp_path,
        record_id="a",
        prompt="a",
        split="train",
        chosen=latents,
        rejected=latents,
        conditioning=text,
    )
    write_pair_latents(
        tmp_path,
        record_id="t",
        prompt="t",
        split="train",
        chosen=latents,
        rejected=latents,
        conditioning=text,
        label=0.5,
    )
    data = PairLatents(tmp_path)
    assert len(data) == 1 and data.skipped_ties == 1


@pytest.fixture
def fresh_accelerate_state():
    """accelerate keeps one process-wide state; a test that changes mixed precision starts a new one."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_bf16_autocast_computes_the_network_in_bf16_and_the_loss_in_float32(
    synthetic_pairs, tmp_path, fresh_accelerate_state
):
    trainer = _trainer(synthetic_pairs, tmp_path / "run", mixed_precision="bf16", max_steps=2)
    seen = []
    handle = trainer.peft_model.base_model.model.proj_out.register_forward_hook(
        lambda module, inputs, output: seen.append(output.dtype)
    )
    batch = trainer.train_data.batch([0, 1])
    output = trainer.pair_loss(batch, torch.Generator().manual_seed(0))
    handle.remove()
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert output.loss.dtype == torch.float32 and output.margin.dtype == torch.float32
    assert trainer.train_step()["step"] == 1.0
