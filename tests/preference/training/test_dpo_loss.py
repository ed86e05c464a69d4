"""The flow-matching DPO loss against hand computation, its gradient's sign, and the two conventions."""

from __future__ import annotations

import math

import pytest
import torch

from preference.training.dpo_loss import (
    diffusers_flow_sample,
    dpo_loss_from_errors,
    flow_dpo_loss,
    sample_noise_levels,
    stepvideo_flow_sample,
    velocity_error,
)


def _fixed_predictions():
    target_w = torch.tensor([[1.0, -1.0], [0.5, 0.0]])
    target_l = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    policy_w = torch.tensor([[0.5, -1.0], [0.5, 1.0]])  # errors: (0.25 + 0) / 2, (0 + 1) / 2
    policy_l = torch.tensor([[0.0, 1.0], [1.0, 3.0]])  # errors: 1 / 2, 4 / 2
    reference_w = torch.tensor([[0.0, -1.0], [1.5, 0.0]])  # errors: 1 / 2, 1 / 2
    reference_l = torch.tensor([[1.0, 2.0], [1.0, 1.0]])  # errors: 1 / 2, 0
    return policy_w, policy_l, reference_w, reference_l, target_w, target_l


def test_loss_equals_a_hand_computed_value():
    beta = 2.0
    output = flow_dpo_loss(*_fixed_predictions(), beta=beta)
    # pair 0: (0.125 - 0.5) - (0.5 - 0.5) = -0.375 -> margin = -1 * -0.375 = 0.375
    # pair 1: (0.5 - 0.5) - (2.0 - 0.0) = -2.0 -> margin = 2.0
    expected_margins = [0.375, 2.0]
    expected_loss = sum(math.log1p(math.exp(-m)) for m in expected_margins) / 2
    assert output.margin.tolist() == pytest.approx(expected_margins, abs=1e-7)
    assert float(output.loss) == pytest.approx(expected_loss, abs=1e-7)
    assert float(output.implicit_accuracy) == 1.0
    assert output.policy_chosen_error.tolist() == pytest.approx([0.125, 0.5])
    assert output.reference_rejected_error.tolist() == pytest.approx([0.5, 0.0])
    assert output.loss.dtype == torch.float32


def test_bf16_predictions_reduce_in_float32():
    predictions = [p.to(torch.bfloat16) for p in _fixed_predictions()]
    output = flow_dpo_loss(*predictions, beta=2.0)
    assert output.loss.dtype == torch.float32 and output.margin.dtype == torch.float32


def test_lowering_the_policy_error_on_the_chosen_video_lowers_the_loss():
    errors = {
        "policy_chosen_error": torch.tensor([0.8], requires_grad=True),
        "policy_rejected_error": torch.tensor([0.9], requires_grad=True),
        "reference_chosen_error": torch.tensor([0.85]),
        "reference_rejected_error": torch.tensor([0.85]),
    }
    output = dpo_loss_from_errors(**errors, beta=10.0)
    output.loss.backward()
    assert errors["policy_chosen_error"].grad.item() > 0  # a lower chosen error gives a lower loss
    assert errors["policy_rejected_error"].grad.item() < 0  # a higher rejected error gives a lower loss
    # and the step the gradient suggests does lower it
    lowered = dpo_loss_from_errors(
        errors["policy_chosen_error"].detach() - 0.01,
        errors["policy_rejected_error"].detach(),
        errors["reference_chosen_error"],
        errors["reference_rejected_error"],
        beta=10.0,
    )
    assert lowered.loss < output.loss


def test_gradient_reaches_the_policy_prediction_with_the_right_sign():
    policy_w, policy_l, reference_w, reference_l, target_w, target_l = _fixed_predictions()
    policy_w = policy_w.clone().requires_grad_(True)
    flow_dpo_loss(policy_w, policy_l, reference_w, reference_l, target_w, target_l, beta=2.0).loss.backward()
    # moving the chosen prediction along -grad moves it towards its target
    moved = policy_w.detach() - 0.1 * policy_w.grad
    assert velocity_error(moved, target_w).sum() < velocity_error(policy_w.detach(), target_w).sum()


def test_equal_policy_and_reference_give_log_two_and_no_accuracy():
    p_w, p_l, _, _, t_w, t_l = _fixed_predictions()
    output = flow_dpo_loss(p_w, p_l, p_w, p_l, t_w, t_l, beta=1000.0)
    assert float(output.loss) == pytest.approx(math.log(2))
    assert float(output.implicit_accuracy) == 0.0


def test_the_two_conventions_noise_alike_and_differ_in_the_target_sign():
    generator = torch.Generator().manual_seed(0)
    data, noise = torch.randn(2, 3, 4, generator=generator), torch.randn(2, 3, 4, generator=generator)
    level = torch.tensor([0.25, 0.9])
    diffusers = diffusers_flow_sample(data, noise, level)
    stepvideo = stepvideo_flow_sample(data, noise, level)
    assert torch.allclose(diffusers.noisy[0], 0.75 * data[0] + 0.25 * noise[0])
    assert torch.allclose(diffusers.noisy, stepvideo.noisy)
    assert torch.equal(diffusers.target, noise - data)
    assert torch.equal(stepvideo.target, data - noise)
    assert diffusers.time.tolist() == pytest.approx([0.25, 0.9])
    assert stepvideo.time.tolist() == pytest.approx([0.75, 0.1])  # t runs from noise (0) to data (1)


def test_noise_levels_are_logit_normal():
    generator = torch.Generator().manual_seed(0)
    levels = sample_noise_levels(20000, logit_mean=0.5, logit_std=1.5, generator=generator)
    logits = torch.logit(levels.double())
    assert float(logits.mean()) == pytest.approx(0.5, abs=0.05)
    assert float(logits.std()) == pytest.approx(1.5, abs=0.05)
    assert 0 < float(levels.min()) and float(levels.max()) < 1
    shifted = sample_noise_levels(5, shift=3.0, generator=torch.Generator().manual_seed(1))
    plain = sample_noise_levels(5, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(shifted, 3 * plain / (1 + 2 * plain))


def test_bad_beta_is_refused():
    with pytest.raises(ValueError, match="beta"):
        dpo_loss_from_errors(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.0)
