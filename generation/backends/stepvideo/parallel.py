"""Tensor parallelism of the Step-Video DiT over several GPUs for one video, with PyTorch's own engine.

`parallelize_dit(dit, mesh)` hands every block's attention and feed-forward linears to
`torch.distributed.tensor.parallel.parallelize_module` (Megatron-style): column-wise on `attn1.wqkv`,
`attn2.wq`, `attn2.wkv` and `ff.net.0.proj`, row-wise on the three `wo` and `ff.net.2`. Each rank then
holds heads / P whole heads (the released weights keep each head's q, k and v side by side, so an even
split of the output rows is a split by heads) and a 1 / P slice of the MLP; QK-norm and RoPE act per head
on the local ones. The row-wise layers' sum over ranks is DTensor's own all-reduce; nothing here writes a
collective. The rest (patch embedding, AdaLN-single, text projection, norms, output head: 0.35B of the
29.3B parameters) is replicated, and every rank computes it identically.

Sequence parallelism (`SequenceParallel` on the LayerNorms) does not fit this block: the AdaLN
shift/scale/gate, the RoPE tables and the cross-attention's residual input sit between the norms and the
linears as plain tensors over the whole sequence, so the residual stream stays replicated; it is
S x 6144 per video (75,888 x 6144, 0.93 GB in bf16 at 544x992x204), small next to the weights.

`load_parallel_dit(root, mesh, device, dtype)` builds the model on the meta device, parallelizes it and
reads only each rank's slice of every sharded tensor from the published safetensors files, so no rank
ever holds the whole 30B. `ControlChannel` carries the leader's commands (load, generate, stop, close) to
the other ranks with `broadcast_object_list` over a gloo group, which is what `backend.py` uses to run
all ranks in lockstep (see `follow`).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor, Shard
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from ..base import BackendError, CheckpointError
from .checkpoint import TRANSFORMER_DIR, load_strict, read_dit_config, weight_files
from .config import DiTConfig
from .dit import CrossAttention, StepVideoBlock, StepVideoDiT

# module name inside a block -> how it is split
BLOCK_PLAN: dict[str, Any] = {
    "attn1.wqkv": ColwiseParallel(),
    "attn1.wo": RowwiseParallel(),
    "attn2.wq": ColwiseParallel(),
    "attn2.wkv": ColwiseParallel(),
    "attn2.wo": RowwiseParallel(),
    "ff.net.0.proj": ColwiseParallel(),
    "ff.net.2": RowwiseParallel(),
}
# The control group waits between videos, possibly for days; the compute group's timeout stays default.
CONTROL_TIMEOUT = datetime.timedelta(days=30)


class ParallelError(BackendError):
    """A DiT that cannot be split over this many ranks, or a process group that is not there."""


def check_divisible(config: DiTConfig, world: int) -> None:
    """Heads must split evenly (each rank keeps whole heads); the MLP width (4 x dim) then does too."""
    heads = config.num_attention_heads
    if world < 1 or heads % world:
        divisors = [d for d in range(1, heads + 1) if heads % d == 0]
        raise ParallelError(
            f"tensor parallelism over {world} ranks needs the DiT's {heads} attention heads to divide "
            f"evenly; use a number of GPUs in {divisors}"
        )


def parallelize_dit(dit: StepVideoDiT, mesh: DeviceMesh) -> StepVideoDiT:
    """Shard every block's attention and MLP over the 1-D `mesh` in place; returns the module.

    Inputs and outputs stay ordinary replicated tensors, so the sampler and the rest of the DiT do not
    change. Works on a model on the meta device too (its shards are then meta until loaded).
    """
    if mesh.ndim != 1:
        raise ParallelError(f"a 1-D device mesh is expected, got {mesh.ndim} dimensions")
    world = mesh.size()
    check_divisible(dit.config, world)
    for block in dit.transformer_blocks:
        parallelize_module(block, mesh, dict(BLOCK_PLAN))
        for module in block.modules():
            if isinstance(module, CrossAttention):  # its head count, kept true (the forward reads widths)
                module.heads = dit.config.num_attention_heads // world
    return dit


def local_heads(dit: StepVideoDiT) -> int:
    """Attention heads this rank computes (all of them when not parallelized), from its q/k/v rows."""
    block = dit.transformer_blocks[0]
    assert isinstance(block, StepVideoBlock)
    weight = block.attn1.wqkv.weight
    local = weight.to_local() if isinstance(weight, DTensor) else weight
    return int(local.shape[0]) // (3 * dit.config.attention_head_dim)


def _local_slice(full_shape: tuple[int, ...], placement: Shard, rank: int, world: int) -> tuple[int, int]:
    size = full_shape[placement.dim] // world
    return rank * size, size


def iter_local_tensors(
    files: list[Path], expected: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of the files, a sharded parameter read as this rank's slice only (a DTensor)."""
    from safetensors import safe_open

    for path in files:
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path}: tensor-parallel loading reads safetensors files only")
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for key in handle.keys():
                target = expected.get(key)
                if isinstance(target, DTensor):
                    (placement,) = target.placements
                    assert isinstance(placement, Shard)
                    view = handle.get_slice(key)
                    shape = tuple(view.get_shape())
                    if shape != tuple(target.shape):
                        raise CheckpointError(
                            f"transformer: {key} has shape {shape}, the config gives {tuple(target.shape)}"
                        )
                    mesh = target.device_mesh
                    start, size = _local_slice(shape, placement, mesh.get_local_rank(), mesh.size())
                    index = [slice(None)] * len(shape)
                    index[placement.dim] = slice(start, start + size)
                    local = view[tuple(index)].to(device, dtype)
                    yield key, DTensor.from_local(local, mesh, target.placements, run_check=False)
                else:
                    tensor = handle.get_tensor(key)
                    yield key, tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)


def load_parallel_dit(root: Path, mesh: DeviceMesh, device: torch.device, dtype: torch.dtype) -> StepVideoDiT:
    """The published `transformer/` folder, each rank holding its shard (strict keys, as `load_dit`)."""
    config = read_dit_config(root)
    check_divisible(config, mesh.size())
    with torch.device("meta"):
        dit = StepVideoDiT(config)
    parallelize_dit(dit, mesh)
    expected = dict(dit.state_dict())
    files = weight_files(root / TRANSFORMER_DIR)
    load_strict(dit, iter_local_tensors(files, expected, device, dtype), "transformer")
    return dit


def local_parameter_bytes(module: nn.Module) -> int:
    """Bytes of parameters this rank holds (its shards plus the replicated parts)."""
    total = 0
    for param in module.parameters():
        tensor = param.to_local() if isinstance(param, DTensor) else param
        total += tensor.numel() * tensor.element_size()
    return total


# -- the process group and the leader's commands --------------------------------------------------------


def init_from_env(device_type: str) -> torch.device:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT) unless
    joined: NCCL with each rank on cuda:LOCAL_RANK for "cuda", gloo on the CPU for "cpu". Returns this
    rank's device."""
    if device_type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device_type == "cpu":
        device = torch.device("cpu")
    else:
        raise ParallelError(f"tensor parallelism runs on cuda or cpu, not {device_type!r}")
    if not dist.is_initialized():
        if "WORLD_SIZE" not in os.environ:
            raise ParallelError(
                "tensor_parallel needs a process group: start the worker with torchrun (see the README)"
            )
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return device


def tensor_parallel_mesh(device: torch.device) -> DeviceMesh:
    """All ranks of the group as one tensor-parallel dimension."""
    return init_device_mesh(device.type, (dist.get_world_size(),), mesh_dim_names=("tp",))


class LeaderFailed(Exception):
    """On a follower: the leader stopped the current video (cancelled, or failed on its own part)."""


@dataclass(frozen=True)
class _Failure:
    message: str


class ControlChannel:
    """The leader's (rank 0's) commands to the other ranks: picklable objects sent with
    `broadcast_object_list` over a gloo group of its own, so a follower may wait between videos for
    longer than the compute group's timeout."""

    _shared: ControlChannel | None = None

    def __init__(self) -> None:
        group = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
        if not isinstance(group, dist.ProcessGroup):
            raise ParallelError("this rank is not in the control group")
        self.group = group
        self.rank = dist.get_rank()

    @classmethod
    def shared(cls) -> ControlChannel:
        """One channel per process (every rank must create it in the same order, so once)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    @property
    def world(self) -> int:
        return dist.get_world_size()

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def share(self, value: Any = None) -> Any:
        """The leader's value on every rank (what the leader passes; the others pass nothing)."""
        box = [value if self.leader else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def leader_result(self, compute: Callable[[], Any]) -> Any:
        """What `compute()` returns on the leader, on every rank (only the leader runs it). When it raises
        there, the leader re-raises and each follower raises `LeaderFailed`, so no rank is left waiting."""
        if not self.leader:
            value = self.share()
            if isinstance(value, _Failure):
                raise LeaderFailed(value.message)
            return value
        try:
            value = compute()
        except BaseException as error:
            self.share(_Failure(f"{type(error).__name__}: {error}"))
            raise
        self.share(value)
        return value


def follow(channel: ControlChannel | None = None) -> None:
    """A non-leader rank's whole life: load, generate and close as the leader says, until it says exit.

    The leader is a `StepVideoBackend` loaded with `tensor_parallel` on rank 0 (in the Celery worker or
    the command line); each of its steps has a matching one here, so both run the same collectives.
    """
    from .backend import StepVideoBackend

    channel = channel or ControlChannel.shared()
    if channel.leader:
        raise ParallelError("rank 0 leads; follow() is for the other ranks")
    backend: StepVideoBackend | None = None
    while True:
        command, arguments = channel.share()
        if command == "load":
            if backend is not None:
                backend.close()
            backend = StepVideoBackend.load(**arguments)
        elif command == "generate":
            assert backend is not None, "generate before load"
            try:
                backend.generate(arguments)
            except LeaderFailed:
                continue
        elif command == "close":
            if backend is not None:
                backend.close()
            backend = None
        elif command == "exit":
            if backend is not None:
                backend.close()
            return
        else:
            raise ParallelError(f"unknown command from the leader: {command!r}")


def finish(channel: ControlChannel | None = None) -> None:
    """The leader tells the followers to exit (at the end of the worker or the command line)."""
    channel = channel or ControlChannel.shared()
    if channel.leader and dist.get_world_size() > 1:
        channel.share(("exit", None))


# -- the command line: one video over every rank of a torchrun launch ------------------------------------


def _setting(text: str) -> tuple[str, Any]:
    import json

    name, _, value = text.partition("=")
    if not name or not _:
        raise ValueError(f"a setting is NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main(argv: list[str] | None = None) -> int:
    """`torchrun --nproc-per-node N -m generation.backends.stepvideo.parallel CHECKPOINT PROMPT OUT.mp4`"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m generation.backends.stepvideo.parallel",
        description="Generate one Step-Video-T2V video with the DiT split over every rank (run it with torchrun).",
    )
    parser.add_argument("checkpoint", type=Path, help="the published stepvideo-t2v folder")
    parser.add_argument("prompt")
    parser.add_argument("output", type=Path, help="the MP4 to write (rank 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--dtype", default=None, help="default bfloat16 on cuda, float32 on the CPU")
    parser.add_argument("--variant", choices=("base", "turbo"), default="base")
    parser.add_argument(
        "--set", dest="settings", action="append", type=_setting, default=[], metavar="NAME=VALUE",
        help="a setting (steps, frames, height, width, guidance_scale, ...); repeatable",
    )  # fmt: skip
    parser.add_argument(
        "--option", dest="options", action="append", type=_setting, default=[], metavar="NAME=VALUE",
        help="a backend option (text_device, vae_device, offload, sequential_guidance); repeatable",
    )  # fmt: skip
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device == "cuda" else "float32"))
    init_from_env(args.device)
    channel = ControlChannel.shared()
    try:
        if not channel.leader:
            follow(channel)
            return 0
        from ...videofiles import encode_frames
        from ..base import GenerationRequest
        from .backend import StepVideoBackend

        options = {**dict(args.options), "variant": args.variant, "tensor_parallel": True}
        try:
            backend = StepVideoBackend.load(args.checkpoint, device=args.device, dtype=dtype, options=options)
            try:
                request = GenerationRequest([args.prompt], dict(args.settings), seeds=[args.seed])
                (video,) = backend.generate(
                    request, progress=lambda done, total: print(f"PROGRESS {done}/{total}", flush=True)
                )
                encode_frames(video.frames, video.fps, args.output)
                print(f"wrote {args.output} ({video.frames.shape[0]} frames at {video.fps:g} fps)")
            finally:
                backend.close()
        finally:
            finish(channel)  # also when loading failed: the followers must not wait for ever
        return 0
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    # run as the imported module, not as __main__: the backend's channel must be this one's
    from generation.backends.stepvideo import parallel

    raise SystemExit(parallel.main())
