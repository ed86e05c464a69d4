"""Tensor parallelism of the Step-Video DiT: two gloo processes on the CPU against one process.

One spawned pair of ranks (the start-up is most of the cost) does everything, and each test reads what it
saved: the sharded DiT's forward, then the backend under `tensor_parallel` with rank 1 following rank 0
through a cancelled video and a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from generation.backends import GenerationCancelled, GenerationRequest, load_backend
from generation.backends.stepvideo import checkpoint, parallel
from generation.backends.stepvideo.config import DiTConfig
from generation.backends.stepvideo.tiny import TINY_DIT

WORLD = 2
# float32 on the CPU: the sharded sums differ from the whole ones only in rounding order
DIT_TOLERANCE = 1e-5
SETTINGS = {"height": 32, "width": 32, "frames": 17, "steps": 2}


def dit_inputs() -> tuple[torch.Tensor, ...]:
    """A guided pair (the second prompt shorter, so the cross-attention mask is used) at latents 3x4x4."""
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(2, 3, TINY_DIT.in_channels, 4, 4, generator=generator)
    timestep = torch.tensor([0.3, 0.3])
    llm_states = torch.randn(2, 6, TINY_DIT.llm_channels, generator=generator)
    llm_mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    assert TINY_DIT.clip_channels is not None
    clip_states = torch.randn(2, 5, TINY_DIT.clip_channels, generator=generator)
    return latents, timestep, llm_states, llm_mask, clip_states


def request() -> GenerationRequest:
    return GenerationRequest(["a cat runs on the grass"], dict(SETTINGS), seeds=[7])


def _refuse_three_heads(root: Path, out: Path) -> str:
    """The leader's error for a DiT of 3 heads over 2 ranks (the followers are not asked to load it)."""
    copy = out / "three-heads"
    shutil.copytree(root, copy)
    config_path = copy / "transformer" / "config.json"
    config = json.loads(config_path.read_text())
    config["num_attention_heads"] = 3
    config_path.write_text(json.dumps(config))
    try:
        load_backend("stepvideo", copy, options={"tensor_parallel": True})
    except parallel.ParallelError as error:
        return str(error)
    return "loaded"


def _rank(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    device = parallel.init_from_env("cpu")
    results: dict[str, object] = {}
    dit = parallel.load_parallel_dit(Path(root), parallel.tensor_parallel_mesh(device), device, torch.float32)
    with torch.inference_mode():
        results["dit"] = dit(*dit_inputs())
    results["heads"] = parallel.local_heads(dit)
    results["bytes"] = parallel.local_parameter_bytes(dit)
    del dit

    channel = parallel.ControlChannel.shared()
    if channel.leader:
        results["refused"] = _refuse_three_heads(Path(root), Path(out))
        backend = load_backend("stepvideo", root, options={"tensor_parallel": True})
        try:
            backend.generate(request(), should_stop=lambda: True)
        except GenerationCancelled:
            results["cancelled"] = True
        (video,) = backend.generate(request())
        results["frames"] = torch.from_numpy(video.frames)
        backend.close()
        parallel.finish(channel)
    else:
        parallel.follow(channel)
        results["followed"] = True
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("tp")
    mp.spawn(_rank, args=(_free_port(), str(tiny_checkpoint), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_tensor_parallel_dit_forward_equals_one_process(tiny_checkpoint: Path, ranks: list[dict]) -> None:
    whole = checkpoint.load_dit(tiny_checkpoint, torch.device("cpu"), torch.float32)
    with torch.inference_mode():
        expected = whole(*dit_inputs())
    for result in ranks:
        torch.testing.assert_close(result["dit"], expected, rtol=0, atol=DIT_TOLERANCE)
        assert result["heads"] == TINY_DIT.num_attention_heads // WORLD
        # the attention and MLP weights are split, the rest replicated
        assert result["bytes"] < 0.8 * parallel.local_parameter_bytes(whole)


def test_tensor_parallel_backend_follows_the_leader(tiny_backend, ranks: list[dict]) -> None:
    leader, follower = ranks
    assert leader["cancelled"] and follower["followed"]
    assert "3 attention heads" in leader["refused"]
    (expected,) = tiny_backend.generate(request())
    # uint8 frames: the last bit may round differently
    difference = (leader["frames"].int() - torch.from_numpy(expected.frames).int()).abs()
    assert int(difference.max()) <= 1
    assert float(difference.float().mean()) < 0.05


def test_heads_must_divide_over_the_ranks() -> None:
    parallel.check_divisible(DiTConfig(), 8)
    with pytest.raises(parallel.ParallelError, match=r"48 attention heads .* \[1, 2, 3, 4, 6, 8, 12"):
        parallel.check_divisible(DiTConfig(), 5)
    with pytest.raises(parallel.ParallelError, match="2 attention heads"):
        parallel.check_divisible(TINY_DIT, 3)


def test_tensor_parallel_needs_a_launch(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(parallel.ParallelError, match="torchrun"):
        load_backend("stepvideo", tiny_checkpoint, options={"tensor_parallel": True})


@pytest.mark.slow
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_the_command_line_writes_one_video_over_two_ranks(
    tiny_checkpoint: Path, tmp_path: Path, device
) -> None:
    """What the README tells a user to run (`--device cuda` needs two GPUs: NCCL, bf16)."""
    if device == "cuda" and torch.cuda.device_count() < WORLD:
        pytest.skip(f"needs {WORLD} CUDA devices")
    from metrics.video.decode import decode_video

    output = tmp_path / "video.mp4"
    settings = [f"--set={name}={value}" for name, value in SETTINGS.items()]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}"]
        + ["-m", "generation.backends.stepvideo.parallel", str(tiny_checkpoint), "a cat runs", str(output)]
        + [f"--device={device}", *settings],
        cwd=Path(__file__).resolve().parents[4],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"PROGRESS {SETTINGS['steps']}/{SETTINGS['steps']}" in done.stdout
    frames = decode_video(output)
    assert tuple(frames.shape) == (SETTINGS["frames"], SETTINGS["height"], SETTINGS["width"], 3)
