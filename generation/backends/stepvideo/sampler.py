"""The flow-matching Euler sampler in the report's convention.

X_t = (1 - t) X_0 + t X_1 with X_0 the noise and X_1 the data, so t runs from 0 (noise) to 1 (data) and
the model predicts the velocity X_1 - X_0. The grid is uniform in s = 1 - t and warped by the time
shift, s' = shift * s / (1 + (shift - 1) * s), which spends more steps near the noise. Each step is
X_{t'} = X_t + (t' - t) v. Classifier-free guidance: v = v_uncond + w (v_cond - v_uncond), used when
w > 1; Turbo's guidance diminishes linearly over the sampling time (`linear_guidance`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

GUIDANCE_SCHEDULES = ("constant", "linear")


def shift_time(s: torch.Tensor, shift: float) -> torch.Tensor:
    """The time shift on the noise level s = 1 - t (SD3's form)."""
    return shift * s / (1 + (shift - 1) * s)


def sampling_times(steps: int, shift: float) -> torch.Tensor:
    """steps + 1 times from t = 0 (noise) to t = 1 (data), float32."""
    if steps < 1:
        raise ValueError("at least one step")
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32)
    return 1.0 - shift_time(s, shift)


def linear_guidance(scale: float, t: float) -> float:
    """Turbo's linearly diminishing guidance: the full scale at t = 0 (noise) falling to 1 (no
    guidance) at t = 1 (data), w(t) = 1 + (scale - 1)(1 - t)."""
    return 1.0 + (scale - 1.0) * (1.0 - t)


def guidance_at(scale: float, schedule: str, t: float) -> float:
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return linear_guidance(scale, t)
    raise ValueError(f"unknown guidance schedule {schedule!r}; one of {GUIDANCE_SCHEDULES}")


def guided_velocity(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    return uncond + scale * (cond - uncond)


def euler_step(x: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One step in float32 (the state is kept in float32 whatever the model's dtype)."""
    return x.float() + velocity.float() * (t_next - t)


# (latents (B, F, C, H, W) in the model's dtype, timestep (B,)) -> velocity
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def denoise_step(
    velocity_fn: VelocityFn,
    x: torch.Tensor,
    t: float,
    t_next: float,
    *,
    guidance_scale: float,
    schedule: str = "constant",
    model_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """One guided Euler step of a single video x (1, F, C, H, W).

    With guidance the conditional and unconditional passes run as one batch of two, [cond, uncond];
    `velocity_fn` gets that batch and is responsible for pairing it with [prompt, negative] text.
    The timestep is cast to the model's dtype before embedding, as the released pipeline does.
    """
    scale = guidance_at(guidance_scale, schedule, t)
    guided = guidance_scale > 1.0
    model_in = torch.cat([x, x]) if guided else x
    timestep = torch.full((model_in.shape[0],), t, dtype=torch.float32, device=x.device).to(model_dtype)
    velocity = velocity_fn(model_in.to(model_dtype), timestep)
    if guided:
        cond, uncond = velocity.chunk(2)
        velocity = guided_velocity(cond.float(), uncond.float(), scale)
    return euler_step(x, velocity, t, t_next)


def sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    *,
    steps: int,
    shift: float,
    guidance_scale: float,
    schedule: str = "constant",
    model_dtype: torch.dtype = torch.float32,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Integrate from the noise at t = 0 to the data at t = 1; `on_step(i)` runs after step i (it may
    raise to stop between steps)."""
    times = sampling_times(steps, shift).tolist()
    x = noise.float()
    for i in range(steps):
        x = denoise_step(
            velocity_fn,
            x,
            times[i],
            times[i + 1],
            guidance_scale=guidance_scale,
            schedule=schedule,
            model_dtype=model_dtype,
        )
        if on_step is not None:
            on_step(i)
    return x
