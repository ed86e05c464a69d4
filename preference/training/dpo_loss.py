"""The flow-matching Diffusion-DPO loss (Video-DPO), in each model family's own convention (no Django).

Diffusion-DPO (Wallace et al., 2023) compares, on one preference pair, how much the policy network improves
on the reference network's denoising error for the chosen video against how much it improves on the
rejected one. With flow matching the error is that of the predicted velocity. One pair, on one screen:

1. The pair shares one draw of the initial noise `n` (the latents' shape) and one noise level `s` in (0, 1),
   drawn from a logit-normal: `s = sigmoid(m + d * z)`, `z ~ N(0, 1)` (`logit_mean` m, `logit_std` d),
   optionally shifted as in SD3/Wan training, `s <- shift * s / (1 + (shift - 1) * s)`. `s` = 1 is pure
   noise, `s` = 0 is the data, in both families.
2. Each family noises the data `x` (chosen `x_w`, rejected `x_l`) and defines the velocity target in its own
   convention (`FLOW_CONVENTIONS`):
   - diffusers (Wan, the `FlowMatchEulerDiscreteScheduler` models): sigma = s,
     `x_sigma = (1 - sigma) * x_0 + sigma * eps` with `x_0` the data and `eps` = n, target `eps - x_0`;
     the network is given `timestep = 1000 * sigma` (`num_train_timesteps`).
   - Step-Video-T2V (its report's notation): t = 1 - s runs from noise (t = 0) to data (t = 1),
     `X_t = (1 - t) * X_0 + t * X_1` with `X_0` = n the noise and `X_1` the data, target `X_1 - X_0`.
   Both give the same noisy sample for the same (n, s); the targets differ in sign only, and each network
   predicts in its own convention, so the errors below are comparable across families.
3. The four errors are the per-element mean squared velocity error, in float32, over all latent elements
   (C * F * H * W) of each video: `e_w^theta = mean((v_theta(x_w) - target_w)^2)`, likewise `e_l^theta`
   for the rejected video and `e_w^ref`, `e_l^ref` for the reference network (the same weights with the
   LoRA adapters disabled, under no_grad).
4. The margin ("inside term") and the loss, with a constant beta:
       margin = -(beta / 2) * ((e_w^theta - e_w^ref) - (e_l^theta - e_l^ref))
       loss   = -log sigmoid(margin), averaged (float32) over the pairs of a batch.
   This is the Diffusion-DPO code's form (`scale_term = -0.5 * beta`, errors as means over elements), so
   its beta values carry over: because the errors are per-element means, beta does not depend on the
   latent size. The margin is positive when the policy lowered its error on the chosen video by more than
   on the rejected one, relative to the reference. At the start (LoRA B = 0) the policy is the reference,
   the margin is 0 and the loss is log 2.
5. Implicit accuracy: the share of pairs with margin > 0 (a margin of exactly 0, as at the start, does not
   count as correct).

The gradient only flows through the policy errors: lowering `e_w^theta` raises the margin and lowers the
loss; lowering `e_l^theta` lowers the margin and raises the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

NUM_TRAIN_TIMESTEPS = 1000  # diffusers' flow-matching schedulers: timestep = 1000 * sigma


@dataclass(frozen=True)
class FlowSample:
    """A noised sample, the velocity target and the family's own time value (sigma, or t)."""

    noisy: torch.Tensor
    target: torch.Tensor
    time: torch.Tensor  # (B,), diffusers' sigma or Step-Video's t, float32


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def diffusers_flow_sample(data: torch.Tensor, noise: torch.Tensor, noise_level: torch.Tensor) -> FlowSample:
    """diffusers' flow matching: sigma = noise level, x = (1 - sigma) x_0 + sigma eps, target eps - x_0."""
    sigma = noise_level.float()
    s = _per_sample(sigma, data)
    return FlowSample(noisy=(1 - s) * data + s * noise, target=noise - data, time=sigma)


def stepvideo_flow_sample(data: torch.Tensor, noise: torch.Tensor, noise_level: torch.Tensor) -> FlowSample:
    """Step-Video's notation: t = 1 - noise level (0 noise, 1 data), X_t = (1 - t) X_0 + t X_1, target X_1 - X_0."""
    t = 1 - noise_level.float()
    tt = _per_sample(t, data)
    return FlowSample(noisy=(1 - tt) * noise + tt * data, target=data - noise, time=t)


FlowConvention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], FlowSample]
FLOW_CONVENTIONS: dict[str, FlowConvention] = {
    "diffusers": diffusers_flow_sample,
    "stepvideo": stepvideo_flow_sample,
}


def sample_noise_levels(
    count: int,
    *,
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """`count` noise levels s in (0, 1) from the logit-normal of step 1 (float32), one per pair."""
    if logit_std <= 0 or shift <= 0:
        raise ValueError(f"logit_std and shift must be positive, got {logit_std} and {shift}")
    z = torch.randn(count, generator=generator, dtype=torch.float32)
    s = torch.sigmoid(logit_mean + logit_std * z)
    if shift != 1.0:
        s = shift * s / (1 + (shift - 1) * s)
    return s.to(device)


def velocity_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error over all non-batch elements, in float32: shape (B,)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
    return (prediction.float() - target.float()).pow(2).flatten(1).mean(dim=1)


@dataclass(frozen=True)
class DPOLossOutput:
    """The loss (a scalar with grad) and its diagnostics, all float32 (diagnostics detached, per batch)."""

    loss: torch.Tensor
    margin: torch.Tensor  # (B,) the inside term
    implicit_accuracy: torch.Tensor  # scalar: share of margins > 0
    policy_chosen_error: torch.Tensor  # (B,)
    policy_rejected_error: torch.Tensor
    reference_chosen_error: torch.Tensor
    reference_rejected_error: torch.Tensor

    def metrics(self) -> dict[str, float]:
        """Batch means as plain numbers, named as the trainer logs them."""
        return {
            "loss": float(self.loss.detach()),
            "implicit_accuracy": float(self.implicit_accuracy),
            "margin": float(self.margin.mean()),
            "policy_chosen_error": float(self.policy_chosen_error.mean()),
            "policy_rejected_error": float(self.policy_rejected_error.mean()),
            "reference_chosen_error": float(self.reference_chosen_error.mean()),
            "reference_rejected_error": float(self.reference_rejected_error.mean()),
        }


def dpo_loss_from_errors(
    policy_chosen_error: torch.Tensor,
    policy_rejected_error: torch.Tensor,
    reference_chosen_error: torch.Tensor,
    reference_rejected_error: torch.Tensor,
    *,
    beta: float,
) -> DPOLossOutput:
    """Step 4 and 5 of the module docstring on per-pair errors (B,); the reference errors carry no grad."""
    if not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a positive number, got {beta}")
    pw, pl = policy_chosen_error.float(), policy_rejected_error.float()
    rw, rl = reference_chosen_error.float().detach(), reference_rejected_error.float().detach()
    margin = -0.5 * beta * ((pw - rw) - (pl - rl))
    loss = -F.logsigmoid(margin).mean()
    return DPOLossOutput(
        loss=loss,
        margin=margin.detach(),
        implicit_accuracy=(margin.detach() > 0).float().mean(),
        policy_chosen_error=pw.detach(),
        policy_rejected_error=pl.detach(),
        reference_chosen_error=rw,
        reference_rejected_error=rl,
    )


def flow_dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    target_chosen: torch.Tensor,
    target_rejected: torch.Tensor,
    *,
    beta: float,
) -> DPOLossOutput:
    """The loss from the four velocity predictions and the two targets (each (B, ...)); see the docstring."""
    return dpo_loss_from_errors(
        velocity_error(policy_chosen, target_chosen),
        velocity_error(policy_rejected, target_rejected),
        velocity_error(reference_chosen, target_chosen),
        velocity_error(reference_rejected, target_rejected),
        beta=beta,
    )
