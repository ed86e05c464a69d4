"""Video-DPO: LoRA (peft) on a video transformer, trained with the flow-matching DPO loss (no Django).

The loss is written down in `dpo_loss.py`. This module holds what turns it into a training run:

- Inputs (`PairLatents`, `write_pair_latents`): a folder of precomputed tensors, one safetensors file per
  pair holding `chosen` and `rejected` latents (C, F, H, W) and the prompt's conditioning tensors under
  `cond.<name>` (for diffusers' Wan: `cond.encoder_hidden_states`, (L, D)), plus `index.jsonl` with one line
  per pair: record id, prompt text, split, label and file name. The site writes it once per export (VAE
  encoding the exported videos, or the initial latents it stored) and the trainer never sees a video.
  Only decided pairs (label 1.0) train; ties are kept in the index and skipped here.
- The network (`TransformerAdapter`): how to call one family's transformer on noised latents, in which flow
  convention it predicts, and which modules get LoRA. `DIFFUSERS_ADAPTER` serves diffusers' video
  transformers (`WanTransformer3DModel`: `timestep = 1000 * sigma`, `encoder_hidden_states`);
  `stepvideo_adapter(forward)` plugs in a native Step-Video-T2V DiT with a forward function that takes the
  network, latents (B, C, F, H, W), Step-Video's t (0 noise .. 1 data) and the conditioning dict.
- The reference is the policy with its adapters disabled (`with peft_model.disable_adapter():` under
  no_grad), so one copy of the base weights serves both.
- Each step draws, per pair, one noise tensor and one logit-normal noise level shared by chosen and
  rejected, from a generator seeded by (seed, step, process): the same step draws the same noise whether or
  not the run was resumed. The pairs of a step come from a permutation of the training pairs seeded by
  (seed, epoch), so the data order is also a function of the step alone.
- bf16 autocast for the network (`mixed_precision="bf16"`), fp32 for the loss; gradient clipping;
  gradient checkpointing (`enable_gradient_checkpointing()` on diffusers models); AdamW over the LoRA
  weights with a constant learning rate after a linear warm-up; constant beta.
- Logged every step (to `metrics.jsonl` in the output folder, to `logging`, and to `on_step`): loss,
  implicit accuracy, margin, the four errors, gradient norm, learning rate; `ChosenErrorWatch` warns (to
  `logging` and `on_warning`) when the chosen error keeps rising with the rejected one. A resumed run appends to `metrics.jsonl`, so
  steps run after the last checkpoint and before a crash appear twice; the later line of a step counts.
- Checkpoints (`checkpoints/step-<N>/`, through `accelerate`'s `save_state`): the adapter, optimizer,
  scheduler, RNG states and the trainer's step; `resume()` continues at the next step with the same loss
  an uninterrupted run would have had.
- Held-out implicit accuracy on the validation split (split by prompt, as the export splits): a fixed noise
  and level per validation pair, so the figure moves only when the network does; each evaluation goes to
  `on_validation` as it is computed (every `validate_every` steps and at the end).
- Several GPUs through `accelerate` (launch with `accelerate launch`, DDP or FSDP); one process on a CPU.

The adapter on disk (`save_adapter`, also `final/adapter/` of a run) is peft's format: `adapter_config.json`
and `adapter_model.safetensors`, keys `base_model.model.<module>.lora_A.weight` / `lora_B.weight`. Load it
onto a fresh base transformer with `load_adapter(base, folder)` (peft's `PeftModel.from_pretrained`, which
reads rank and alpha from `adapter_config.json`); `.merge_and_unload()` on the result gives back a plain
transformer (e.g. a `WanTransformer3DModel`) with the adapter folded into its weights, for generation.
diffusers' own `load_lora_adapter` is not the way: it ignores `adapter_config.json` and so assumes
alpha = rank.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from preference.pairs import normalise_prompt_text

from .dpo_loss import FLOW_CONVENTIONS, NUM_TRAIN_TIMESTEPS, DPOLossOutput, flow_dpo_loss, sample_noise_levels

logger = logging.getLogger(__name__)

INDEX_NAME = "index.jsonl"
CONDITIONING_PREFIX = "cond."
ADAPTER_DIR = "adapter"
TRAINER_STATE_NAME = "trainer_state.json"
METRICS_NAME = "metrics.jsonl"
SPLITS = ("train", "validation")


class TrainingDataError(ValueError):
    """The latents folder is missing, malformed or inconsistent; the message says what and where."""


# ----------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class PairEntry:
    record_id: str
    prompt: str
    split: str
    label: float
    file: str


def write_pair_latents(
    folder: str | Path,
    *,
    record_id: str,
    prompt: str,
    split: str,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    conditioning: Mapping[str, torch.Tensor],
    label: float = 1.0,
) -> Path:
    """Add one pair to a latents folder: its tensors file, then its index line (so a crash leaves no line
    without a file). Latents are (C, F, H, W); conditioning tensors have no batch dimension."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if split not in SPLITS:
        raise TrainingDataError(f"split must be one of {SPLITS}, got {split!r}")
    if chosen.shape != rejected.shape or chosen.ndim != 4:
        raise TrainingDataError(
            f"chosen and rejected latents must both be (C, F, H, W); got {tuple(chosen.shape)} and "
            f"{tuple(rejected.shape)}"
        )
    if not conditioning:
        raise TrainingDataError("a pair needs its prompt's conditioning tensors")
    name = f"{_safe_name(record_id)}.safetensors"
    tensors = {"chosen": chosen.contiguous(), "rejected": rejected.contiguous()}
    tensors |= {f"{CONDITIONING_PREFIX}{key}": value.contiguous() for key, value in conditioning.items()}
    partial = folder / f".{name}.partial"
    save_file({key: value.detach().cpu().clone() for key, value in tensors.items()}, partial)
    os.replace(partial, folder / name)
    entry = {"record_id": record_id, "prompt": prompt, "split": split, "label": float(label), "file": name}
    with (folder / INDEX_NAME).open("a", encoding="utf-8") as index:
        index.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    return folder / name


def _safe_name(record_id: str) -> str:
    if not record_id or not all(ch.isalnum() or ch in "-_." for ch in record_id) or record_id.startswith("."):
        raise TrainingDataError(f"record ids must be letters, digits, '-', '_' or '.'; got {record_id!r}")
    return record_id


def read_index(folder: str | Path) -> list[PairEntry]:
    """All pairs of a latents folder (both splits, ties included), checked: no record twice, no prompt text
    on both sides of the split, every file present."""
    folder = Path(folder)
    index = folder / INDEX_NAME
    if not index.is_file():
        raise TrainingDataError(f"{folder} has no {INDEX_NAME}: not a latents folder")
    entries: list[PairEntry] = []
    seen: set[str] = set()
    split_of_prompt: dict[str, str] = {}
    for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            entry = PairEntry(
                record_id=str(raw["record_id"]),
                prompt=str(raw["prompt"]),
                split=str(raw["split"]),
                label=float(raw["label"]),
                file=str(raw["file"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TrainingDataError(f"{index}:{number}: not a pair line ({exc})") from None
        if entry.split not in SPLITS:
            raise TrainingDataError(f"{index}:{number}: split {entry.split!r} is not one of {SPLITS}")
        if entry.record_id in seen:
            raise TrainingDataError(f"{index}:{number}: record {entry.record_id} appears twice")
        seen.add(entry.record_id)
        text = normalise_prompt_text(entry.prompt)
        if split_of_prompt.setdefault(text, entry.split) != entry.split:
            raise TrainingDataError(f"{index}:{number}: prompt {entry.prompt!r} is in both splits")
        if not (folder / entry.file).is_file():
            raise TrainingDataError(f"{index}:{number}: {entry.file} is missing")
        entries.append(entry)
    return entries


@dataclass
class PairBatch:
    chosen: torch.Tensor  # (B, C, F, H, W)
    rejected: torch.Tensor
    conditioning: dict[str, torch.Tensor]  # each (B, ...)
    record_ids: list[str]

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(
            chosen=self.chosen.to(device),
            rejected=self.rejected.to(device),
            conditioning={key: value.to(device) for key, value in self.conditioning.items()},
            record_ids=self.record_ids,
        )


class PairLatents:
    """The decided pairs (label 1.0) of one split of a latents folder, read one safetensors file each."""

    def __init__(self, folder: str | Path, split: str = "train") -> None:
        if split not in SPLITS:
            raise TrainingDataError(f"split must be one of {SPLITS}, got {split!r}")
        self.folder = Path(folder)
        self.split = split
        entries = [entry for entry in read_index(folder) if entry.split == split]
        self.entries = [entry for entry in entries if entry.label == 1.0]
        self.skipped_ties = len(entries) - len(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(self.folder / self.entries[index].file)

    def batch(self, indices: Sequence[int]) -> PairBatch:
        items = [self[i] for i in indices]
        keys = set(items[0])
        if "chosen" not in keys or "rejected" not in keys:
            raise TrainingDataError(f"{self.entries[indices[0]].file} lacks chosen/rejected latents")
        for i, item in zip(indices, items, strict=True):
            if set(item) != keys or any(item[k].shape != items[0][k].shape for k in keys):
                raise TrainingDataError(
                    f"{self.entries[i].file} differs in tensors or shapes from {self.entries[indices[0]].file}; "
                    "a batch needs equal shapes (use batch_size=1 for mixed shapes)"
                )
        return PairBatch(
            chosen=torch.stack([item["chosen"] for item in items]),
            rejected=torch.stack([item["rejected"] for item in items]),
            conditioning={
                key[len(CONDITIONING_PREFIX) :]: torch.stack([item[key] for item in items])
                for key in sorted(keys)
                if key.startswith(CONDITIONING_PREFIX)
            },
            record_ids=[self.entries[i].record_id for i in indices],
        )


# ---------------------------------------------------------------------------------------------- network

ForwardFunction = Callable[[nn.Module, torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class TransformerAdapter:
    """How the trainer calls one family's video transformer.

    `forward(network, noisy_latents, time, conditioning)` gets latents (B, C, F, H, W), the family's own
    time value (B,) (diffusers' sigma, or Step-Video's t) and the conditioning dict of the latents folder,
    and returns the predicted velocity (B, C, F, H, W) in the family's convention (`convention`, a key of
    `dpo_loss.FLOW_CONVENTIONS`). `lora_target_modules` names the modules peft wraps.
    """

    convention: str
    forward: ForwardFunction
    lora_target_modules: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.convention not in FLOW_CONVENTIONS:
            raise ValueError(f"convention must be one of {sorted(FLOW_CONVENTIONS)}, got {self.convention!r}")


def diffusers_forward(
    network: nn.Module, latents: torch.Tensor, sigma: torch.Tensor, conditioning: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """A diffusers video transformer (Wan): `timestep = 1000 * sigma`, text as `encoder_hidden_states`."""
    extra = {key: value for key, value in conditioning.items() if key != "encoder_hidden_states"}
    output = network(
        hidden_states=latents,
        timestep=sigma * NUM_TRAIN_TIMESTEPS,
        encoder_hidden_states=conditioning["encoder_hidden_states"],
        return_dict=False,
        **extra,
    )
    return output[0]


# Wan's attention projections (self- and cross-attention), the usual LoRA targets of diffusers' scripts.
DIFFUSERS_ADAPTER = TransformerAdapter(
    convention="diffusers",
    forward=diffusers_forward,
    lora_target_modules=("to_q", "to_k", "to_v", "to_out.0"),
)


def stepvideo_adapter(
    forward: ForwardFunction, lora_target_modules: Sequence[str] = ("to_q", "to_k", "to_v", "to_out.0")
) -> TransformerAdapter:
    """A native Step-Video-T2V DiT: `forward(network, latents (B, C, F, H, W), t (B,), conditioning)` calls
    it (permuting to its own layout and scaling t as it expects) and returns the velocity X_1 - X_0."""
    return TransformerAdapter(
        convention="stepvideo", forward=forward, lora_target_modules=tuple(lora_target_modules)
    )


def add_lora(network: nn.Module, adapter: TransformerAdapter, *, rank: int, alpha: int) -> Any:
    """The network wrapped by peft with fresh LoRA adapters (B = 0: it starts equal to the base)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=list(adapter.lora_target_modules),
        init_lora_weights=True,
    )
    return get_peft_model(network, config)


def load_adapter(base: nn.Module, adapter_dir: str | Path) -> Any:
    """A base network with a saved adapter loaded by peft (`PeftModel.from_pretrained`), for inference."""
    from peft import PeftModel

    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} has no adapter_config.json: not a saved adapter")
    return PeftModel.from_pretrained(base, str(folder), is_trainable=False)


# ------------------------------------------------------------------------------------------------ watch


@dataclass
class ChosenErrorWatch:
    """The known DPO failure: the margin grows because the rejected error rises faster, while the chosen
    error rises too (the policy gets worse on what people preferred).

    Rule: over the last `window` steps, look at the chosen and rejected excess errors over the reference
    (`e_w^theta - e_w^ref`, `e_l^theta - e_l^ref`; the excess cancels most of the step-to-step spread that
    the random noise level puts into the raw errors). Warn when both have a positive least-squares slope
    and the chosen excess averages above zero (the policy is worse than the reference on chosen videos).
    After a warning the window starts over, so a lasting trend warns once per window.
    """

    window: int = 50
    chosen: deque[float] = field(default_factory=deque)
    rejected: deque[float] = field(default_factory=deque)

    def update(self, chosen_excess: float, rejected_excess: float) -> str | None:
        self.chosen.append(chosen_excess)
        self.rejected.append(rejected_excess)
        while len(self.chosen) > self.window:
            self.chosen.popleft()
            self.rejected.popleft()
        if len(self.chosen) < self.window:
            return None
        chosen_slope, rejected_slope = _slope(self.chosen), _slope(self.rejected)
        chosen_mean = sum(self.chosen) / len(self.chosen)
        if chosen_slope > 0 and rejected_slope > 0 and chosen_mean > 0:
            self.chosen.clear()
            self.rejected.clear()
            return (
                f"the chosen error keeps rising with the rejected one over the last {self.window} steps "
                f"(slopes {chosen_slope:.3g} and {rejected_slope:.3g} per step, chosen excess over the "
                f"reference {chosen_mean:.3g}): consider a larger beta or a lower learning rate"
            )
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"window": self.window, "chosen": list(self.chosen), "rejected": list(self.rejected)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.window = int(state["window"])
        self.chosen = deque(float(v) for v in state["chosen"])
        self.rejected = deque(float(v) for v in state["rejected"])


def _slope(values: Iterable[float]) -> float:
    ys = list(values)
    n = len(ys)
    mean_x, mean_y = (n - 1) / 2, sum(ys) / n
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(ys))
    return numerator / sum((x - mean_x) ** 2 for x in range(n))


# ---------------------------------------------------------------------------------------------- trainer


@dataclass(frozen=True)
class DPOConfig:
    """Settings of one Video-DPO run. `beta` is constant; the noise level is logit-normal (dpo_loss)."""

    beta: float = 500.0
    learning_rate: float = 1e-4
    warmup_steps: int = 0
    max_steps: int = 1000
    batch_size: int = 1  # pairs per process and step
    lora_rank: int = 16
    lora_alpha: int = 16
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float = 1.0
    seed: int = 0
    mixed_precision: str = "bf16"  # "bf16" or "no"
    gradient_checkpointing: bool = True
    checkpoint_every: int = 100  # steps; 0: only at the end
    validate_every: int = 100  # steps; 0: only at the end
    watch_window: int = 50

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("bf16", "no"):
            raise ValueError(f"mixed_precision must be 'bf16' or 'no', got {self.mixed_precision!r}")
        for name in ("max_steps", "batch_size", "lora_rank", "watch_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("beta", "learning_rate", "max_grad_norm", "logit_std", "shift"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _TrainerProgress:
    """What accelerate checkpoints beside the weights: the step and the watch's window."""

    def __init__(self, watch: ChosenErrorWatch) -> None:
        self.step = 0
        self.watch = watch

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "watch": self.watch.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = int(state["step"])
        self.watch.load_state_dict(state["watch"])


class VideoDPOTrainer:
    """LoRA Video-DPO on one transformer. `network` is the base (plain, no adapters); it is wrapped in place.

    `accelerator` defaults to a new `accelerate.Accelerator(mixed_precision=config.mixed_precision)`; under
    `accelerate launch` it is the DDP/FSDP process group. On the main process, `on_step(metrics)` receives
    every step's logged figures (the site's live curves), `on_validation(row)` each held-out evaluation
    as soon as it is computed (`{"step": ..., "implicit_accuracy": ..., ...}`), and `on_warning(step,
    message)` each warning of the `ChosenErrorWatch`; `should_stop()` is asked between steps (cancel), and
    a stopped run saves a checkpoint it can resume from.
    """

    def __init__(
        self,
        network: nn.Module,
        adapter: TransformerAdapter,
        config: DPOConfig,
        train_data: PairLatents,
        output_dir: str | Path,
        *,
        validation_data: PairLatents | None = None,
        accelerator: Any = None,
        on_step: Callable[[dict[str, float]], None] | None = None,
        on_validation: Callable[[dict[str, float]], None] | None = None,
        on_warning: Callable[[int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        from accelerate import Accelerator
        from diffusers.optimization import get_scheduler

        if len(train_data) == 0:
            raise TrainingDataError(f"{train_data.folder} has no decided training pairs")
        self.adapter = adapter
        self.config = config
        self.convention = FLOW_CONVENTIONS[adapter.convention]
        self.train_data = train_data
        self.validation_data = validation_data
        self.output_dir = Path(output_dir)
        self.on_step = on_step
        self.on_validation = on_validation
        self.on_warning = on_warning
        self.should_stop = should_stop
        self.accelerator = accelerator or Accelerator(mixed_precision=config.mixed_precision)
        self.progress = _TrainerProgress(ChosenErrorWatch(window=config.watch_window))

        network.requires_grad_(False)
        if config.gradient_checkpointing:
            if not hasattr(network, "enable_gradient_checkpointing"):
                raise ValueError(
                    f"{type(network).__name__} has no enable_gradient_checkpointing(); "
                    "set gradient_checkpointing=False or add the method to the network"
                )
            network.enable_gradient_checkpointing()  # type: ignore[operator]
        with torch.random.fork_rng(devices=[]):  # LoRA A's initialisation (B starts at 0), seeded
            torch.manual_seed(config.seed)
            peft_model = add_lora(network, adapter, rank=config.lora_rank, alpha=config.lora_alpha)
        self.trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            self.trainable, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        scheduler = get_scheduler(
            "constant_with_warmup", optimizer=optimizer, num_warmup_steps=config.warmup_steps
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            peft_model, optimizer, scheduler
        )
        self.accelerator.register_for_checkpointing(self.progress)
        self.accelerator.register_save_state_pre_hook(self._save_adapter_hook)
        self.accelerator.register_load_state_pre_hook(self._load_adapter_hook)

    # -- the pieces of a step

    @property
    def step(self) -> int:
        """Steps done so far; the next step to run has this number."""
        return self.progress.step

    @property
    def peft_model(self) -> Any:
        return self.accelerator.unwrap_model(self.model)

    def _generator(self, *parts: object) -> torch.Generator:
        generator = torch.Generator()
        generator.manual_seed(_seed_of(self.config.seed, *parts))
        return generator

    def _train_indices(self, step: int) -> list[int]:
        """This process's pairs at `step`: positions of a per-epoch permutation, a function of the step."""
        n = len(self.train_data)
        per_step = self.config.batch_size * self.accelerator.num_processes
        start = step * per_step + self.accelerator.process_index * self.config.batch_size
        indices = []
        for position in range(start, start + self.config.batch_size):
            epoch, offset = divmod(position, n)
            order = torch.randperm(n, generator=self._generator("order", epoch))
            indices.append(int(order[offset]))
        return indices

    def _velocities(self, noisy: torch.Tensor, time: torch.Tensor, conditioning: dict[str, torch.Tensor]):
        """Policy (with grad) and reference (adapters off, no grad) velocities for a stacked batch."""
        with torch.no_grad(), self.peft_model.disable_adapter():
            reference = self.adapter.forward(self.model, noisy, time, conditioning)
        policy = self.adapter.forward(self.model, noisy, time, conditioning)
        return policy, reference

    def pair_loss(self, batch: PairBatch, generator: torch.Generator, *, grad: bool = True) -> DPOLossOutput:
        """The DPO loss of a batch with one noise and one noise level per pair, shared by its two videos."""
        device = self.accelerator.device
        batch = batch.to(device)
        count = batch.chosen.shape[0]
        levels = sample_noise_levels(
            count,
            logit_mean=self.config.logit_mean,
            logit_std=self.config.logit_std,
            shift=self.config.shift,
            generator=generator,
        ).to(device)
        noise = torch.randn(batch.chosen.shape, generator=generator, dtype=torch.float32).to(device)
        chosen = self.convention(batch.chosen.float(), noise, levels)
        rejected = self.convention(batch.rejected.float(), noise, levels)
        noisy = torch.cat([chosen.noisy, rejected.noisy])
        time = torch.cat([chosen.time, rejected.time])
        conditioning = {key: torch.cat([value, value]) for key, value in batch.conditioning.items()}
        context: AbstractContextManager[Any] = nullcontext() if grad else torch.no_grad()
        with context:
            policy, reference = self._velocities(noisy, time, conditioning)
            return flow_dpo_loss(
                policy[:count],
                policy[count:],
                reference[:count],
                reference[count:],
                chosen.target,
                rejected.target,
                beta=self.config.beta,
            )

    def train_step(self) -> dict[str, float]:
        """One optimisation step; returns (and logs) its figures, averaged over all processes' pairs."""
        step = self.progress.step
        self.model.train()
        batch = self.train_data.batch(self._train_indices(step))
        generator = self._generator("train", step, self.accelerator.process_index)
        output = self.pair_loss(batch, generator)
        self.accelerator.backward(output.loss)
        grad_norm = self.accelerator.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        learning_rate = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.progress.step = step + 1

        metrics = self._gathered_metrics(output)
        metrics |= {"step": float(step + 1), "grad_norm": float(grad_norm), "learning_rate": learning_rate}
        warning = self.progress.watch.update(
            metrics["policy_chosen_error"] - metrics["reference_chosen_error"],
            metrics["policy_rejected_error"] - metrics["reference_rejected_error"],
        )
        metrics["chosen_error_rising"] = 1.0 if warning else 0.0
        if warning and self.accelerator.is_main_process:
            logger.warning("step %d: %s", step + 1, warning)
            if self.on_warning is not None:
                self.on_warning(step + 1, warning)
        self._log(metrics)
        return metrics

    def _gathered_metrics(self, output: DPOLossOutput) -> dict[str, float]:
        per_pair = torch.stack(
            [
                -torch.nn.functional.logsigmoid(output.margin),
                (output.margin > 0).float(),
                output.margin,
                output.policy_chosen_error,
                output.policy_rejected_error,
                output.reference_chosen_error,
                output.reference_rejected_error,
            ],
            dim=1,
        )
        means = self.accelerator.gather(per_pair).mean(dim=0).tolist()
        names = (
            "loss",
            "implicit_accuracy",
            "margin",
            "policy_chosen_error",
            "policy_rejected_error",
            "reference_chosen_error",
            "reference_rejected_error",
        )
        return dict(zip(names, means, strict=True))

    def _log(self, metrics: dict[str, float]) -> None:
        if not self.accelerator.is_main_process:
            return
        logger.info("step %d: %s", int(metrics["step"]), json.dumps(metrics, sort_keys=True))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / METRICS_NAME).open("a", encoding="utf-8") as log:
            log.write(json.dumps(metrics, sort_keys=True) + "\n")
        if self.on_step is not None:
            self.on_step(metrics)

    # -- evaluation

    @torch.no_grad()
    def evaluate(self, data: PairLatents | None = None) -> dict[str, float]:
        """Implicit accuracy and loss on a split (default: validation), with a fixed noise per pair."""
        data = data if data is not None else self.validation_data
        if data is None or len(data) == 0:
            return {}
        self.model.eval()
        margins: list[float] = []
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        for index in range(rank, len(data), world):
            output = self.pair_loss(data.batch([index]), self._generator("eval", index), grad=False)
            margins.extend(output.margin.tolist())
        from accelerate.utils import gather_object

        all_margins = torch.tensor(gather_object(margins) if world > 1 else margins)
        return {
            "implicit_accuracy": float((all_margins > 0).float().mean()),
            "loss": float(-torch.nn.functional.logsigmoid(all_margins).mean()),
            "margin": float(all_margins.mean()),
            "pairs": float(len(all_margins)),
        }

    def _validate(self) -> dict[str, float]:
        """The held-out figures at the current step, handed to `on_validation` (main process) at once."""
        row = {"step": float(self.progress.step), **self.evaluate()}
        if self.on_validation is not None and self.accelerator.is_main_process and len(row) > 1:
            self.on_validation(row)
        return row

    # -- checkpoints

    def _save_adapter_hook(self, models: list[nn.Module], weights: list[Any], output_dir: str) -> None:
        if self.accelerator.is_main_process:
            self.accelerator.unwrap_model(models[0]).save_pretrained(os.path.join(output_dir, ADAPTER_DIR))
        weights.clear()  # the frozen base is not checkpointed, only its adapter

    def _load_adapter_hook(self, models: list[nn.Module], input_dir: str) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        model = self.accelerator.unwrap_model(models.pop())
        state = load_file(os.path.join(input_dir, ADAPTER_DIR, "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model, state)
        missing_lora = [key for key in getattr(result, "missing_keys", ()) if "lora_" in key]
        if missing_lora:
            raise TrainingDataError(f"the checkpoint's adapter lacks {len(missing_lora)} LoRA weights")

    def save_checkpoint(self) -> Path:
        """checkpoints/step-<N>/: adapter, optimizer, scheduler, RNG states, step (accelerate's save_state)."""
        folder = self.output_dir / "checkpoints" / f"step-{self.progress.step}"
        self.accelerator.save_state(str(folder))
        if self.accelerator.is_main_process:
            state = {"step": self.progress.step, "config": self.config.to_dict()}
            (folder / TRAINER_STATE_NAME).write_text(json.dumps(state, indent=2, sort_keys=True))
        self.accelerator.wait_for_everyone()
        return folder

    def resume(self, checkpoint: str | Path) -> int:
        """Load a checkpoint folder; returns the step the run continues at."""
        folder = Path(checkpoint)
        if not (folder / TRAINER_STATE_NAME).is_file():
            raise FileNotFoundError(f"{folder} is not a finished checkpoint (no {TRAINER_STATE_NAME})")
        self.accelerator.load_state(str(folder))
        return self.progress.step

    def save_adapter(self, folder: str | Path) -> Path:
        """The trained adapter in peft's format (see the module docstring for loading it back)."""
        folder = Path(folder)
        if self.accelerator.is_main_process:
            self.peft_model.save_pretrained(str(folder))
        self.accelerator.wait_for_everyone()
        return folder

    # -- the run

    def fit(self) -> dict[str, Any]:
        """Train to max_steps (from wherever the trainer stands), validating and checkpointing on schedule.
        Returns the last step's figures, the validation history and where the adapter was saved."""
        config = self.config
        history: list[dict[str, float]] = []
        last: dict[str, float] = {}
        while self.progress.step < config.max_steps:
            if self.should_stop is not None and self.should_stop():
                checkpoint = self.save_checkpoint()
                return {"stopped": True, "checkpoint": str(checkpoint), "last": last, "validation": history}
            last = self.train_step()
            step = self.progress.step
            if config.validate_every and step % config.validate_every == 0 and step < config.max_steps:
                history.append(self._validate())
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.max_steps:
                self.save_checkpoint()
        history.append(self._validate())
        checkpoint = self.save_checkpoint()
        adapter_dir = self.save_adapter(self.output_dir / "final" / ADAPTER_DIR)
        return {
            "stopped": False,
            "checkpoint": str(checkpoint),
            "adapter": str(adapter_dir),
            "last": last,
            "validation": history,
        }


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The finished checkpoint with the highest step in a run's folder, or None."""
    folder = Path(output_dir) / "checkpoints"
    finished = [
        path
        for path in folder.glob("step-*")
        if path.name[5:].isdigit() and (path / TRAINER_STATE_NAME).is_file()
    ]
    return max(finished, key=lambda path: int(path.name[5:]), default=None)


def _seed_of(*parts: object) -> int:
    """A 63-bit seed from parts, stable across processes and Python runs (not Python's salted hash)."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


__all__ = [
    "DIFFUSERS_ADAPTER",
    "ChosenErrorWatch",
    "DPOConfig",
    "PairBatch",
    "PairEntry",
    "PairLatents",
    "TrainingDataError",
    "TransformerAdapter",
    "VideoDPOTrainer",
    "add_lora",
    "diffusers_forward",
    "latest_checkpoint",
    "load_adapter",
    "read_index",
    "stepvideo_adapter",
    "write_pair_latents",
]
