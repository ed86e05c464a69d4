"""The same trainer under DDP: two CPU processes (gloo) started by torchrun, as `accelerate launch` would
on GPUs; checkpoints hold each process's RNG state and the held-out figure covers every validation pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, sys
from pathlib import Path
import torch
from accelerate import Accelerator
from preference.training.video_dpo import DIFFUSERS_ADAPTER, DPOConfig, PairLatents, VideoDPOTrainer
from tests.preference.training.conftest import tiny_wan

torch.set_num_threads(1)
folder = Path(sys.argv[1])
accelerator = Accelerator(cpu=True)
config = DPOConfig(beta=100.0, learning_rate=1e-3, max_steps=4, batch_size=1, lora_rank=4, lora_alpha=4,
                   mixed_precision="no", checkpoint_every=0, validate_every=0)
trainer = VideoDPOTrainer(tiny_wan(), DIFFUSERS_ADAPTER, config, PairLatents(folder / "latents"),
                          folder / "run", validation_data=PairLatents(folder / "latents", "validation"),
                          accelerator=accelerator)
result = trainer.fit()
if accelerator.is_main_process:
    summary = {"processes": accelerator.num_processes, "validation": result["validation"][-1]}
    (folder / "summary.json").write_text(json.dumps(summary))
"""


@pytest.mark.slow
def test_two_processes_train_through_accelerate(tmp_path):
    from .conftest import write_synthetic_pairs

    write_synthetic_pairs(tmp_path / "latents")
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    torchrun = Path(sys.executable).with_name("torchrun")
    environment = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["validation"]["pairs"] == 4  # each process evaluated half, gathered
    checkpoint = tmp_path / "run" / "checkpoints" / "step-4"
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert (tmp_path / "run" / "final" / "adapter" / "adapter_model.safetensors").is_file()
