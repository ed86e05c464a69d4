"""Protocol tests of the command backend: a small script of this test suite's own stands in for a model."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.backends import (
    BackendError,
    CheckpointError,
    GenerationCancelled,
    GenerationRequest,
    PromptRejected,
    SettingsError,
    initial_latents,
    load_backend,
)

SCRIPT = Path(__file__).with_name("fake_t2v_command.py")
SETTINGS = {"height": 32, "width": 48, "frames": 9, "fps": 8, "steps": 3}
COMMAND = ["{python}", str(SCRIPT), "--prompt", "{prompt}", "--seed", "{seed}", "--settings", "{settings}"]


def backend(folder, *extra, latents=False, config_file=False, **options):
    command = [*COMMAND, "--out", "{output}", *extra]
    config = {
        "command": command + (["--latents", "{latents}"] if latents else []),
        "family": "fake",
        "frame_rule": {"multiple": 4, "offset": 1},
        "resolution_multiple": 16,
        "defaults": {"height": 32, "width": 48, "frames": 9, "fps": 8.0, "steps": 3},
        "kill_grace_s": 2,
        **(
            {"latent": {"channels": 4, "spatial_compression": 8, "temporal_compression": 4}}
            if latents
            else {}
        ),
        **options,
    }
    if config_file:
        (folder / "command.json").write_text(json.dumps(config))
        return load_backend("command", folder)
    return load_backend("command", folder, options=config)


def test_protocol_progress_video_and_info(tmp_path):
    command = backend(tmp_path, config_file=True)
    seen = []
    videos = command.generate(
        GenerationRequest(prompts=["a cat walks", "a dog"], settings=SETTINGS, seeds=[5, 6]),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(step, 6) for step in range(1, 7)]
    first = videos[0]
    assert first.frames.dtype == np.uint8 and first.frames.shape == (9, 32, 48, 3)
    assert first.fps == 8.0 and first.seed == 5 and first.initial_latents is None
    assert first.info["backend"] == "command" and first.info["exit_status"] == 0
    assert first.info["command_info"]["program"] == "fake_t2v_command"
    assert first.info["settings"]["steps"] == 3
    assert not np.array_equal(first.frames, videos[1].frames)
    again = command.generate(GenerationRequest(prompts=["a cat walks"], settings=SETTINGS, seeds=[5]))[0]
    assert np.array_equal(first.frames, again.frames)


def test_protocol_latents_file_reaches_the_command(tmp_path):
    command = backend(tmp_path, latents=True)
    shape = command.capabilities.latent_shape(height=32, width=48, frames=9)
    assert shape == (4, 3, 4, 6)
    seeded = command.generate(GenerationRequest(prompts=["a cat"], settings=SETTINGS, seeds=[2]))[0]
    assert torch.equal(seeded.initial_latents, initial_latents(shape, 2))
    shifted = torch.full(shape, 3.0)
    given = command.generate(GenerationRequest(prompts=["a cat"], settings=SETTINGS, latents=[shifted]))[0]
    assert torch.equal(given.initial_latents, shifted)
    assert not np.array_equal(seeded.frames, given.frames)  # the script read the file


def test_protocol_cancel_kills_the_process_group(tmp_path):
    pid_file = tmp_path / "pid"
    command = backend(tmp_path, "--step-seconds", "0.3", "--pid-file", str(pid_file))
    seen = []
    started = time.monotonic()
    with pytest.raises(GenerationCancelled):
        command.generate(
            GenerationRequest(prompts=["a cat"], settings={**SETTINGS, "steps": 50}, seeds=[1]),
            progress=lambda done, total: seen.append(done),
            should_stop=lambda: len(seen) >= 1,
        )
    assert time.monotonic() - started < 10
    assert seen == [1]
    parent, child = (int(pid) for pid in pid_file.read_text().split())
    with pytest.raises(ProcessLookupError):
        os.kill(parent, 0)  # killed and reaped
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the command's child outlived the cancel"


def alive(pid: int) -> bool:
    """Running (a killed orphan may linger as a zombie until its new parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_protocol_failure_keeps_exit_status_and_stderr(tmp_path):
    command = backend(tmp_path, "--fail")
    with pytest.raises(BackendError) as raised:
        command.generate(GenerationRequest(prompts=["a cat"], settings=SETTINGS, seeds=[1]))
    assert "status 3" in str(raised.value) and "the sampler diverged" in str(raised.value)


def test_protocol_rejected_prompt(tmp_path):
    with pytest.raises(PromptRejected, match="forbidden thing"):
        backend(tmp_path).generate(
            GenerationRequest(prompts=["a forbidden cat"], settings=SETTINGS, seeds=[1])
        )


def test_settings_and_configuration_errors(tmp_path):
    command = backend(tmp_path)
    with pytest.raises(SettingsError) as raised:
        command.generate(GenerationRequest(prompts=["a"], settings={**SETTINGS, "frames": 8}, seeds=[1]))
    assert raised.value.setting == "frames"
    with pytest.raises(SettingsError, match="latents"):
        command.generate(
            GenerationRequest(prompts=["a"], settings=SETTINGS, latents=[torch.zeros(4, 3, 4, 6)])
        )
    with pytest.raises(CheckpointError, match="no command"):
        load_backend("command", tmp_path)
    with pytest.raises(CheckpointError, match="unknown placeholders"):
        load_backend("command", tmp_path, options={"command": ["run", "{output}", "{sede}"]})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_backend("command", tmp_path / "nowhere", options={"command": ["run", "{output}"]})
    missing = load_backend(
        "command", tmp_path, options={"command": [str(tmp_path / "no-such-program"), "{output}"]}
    )
    with pytest.raises(BackendError, match="could not be started"):
        missing.generate(GenerationRequest(prompts=["a"], settings={}, seeds=[1]))


def test_capabilities_for_reads_the_configuration_as_loading_does(tmp_path):
    from generation.backends.command import CommandBackend

    loaded = backend(tmp_path, config_file=True)
    assert CommandBackend.capabilities_for(tmp_path).describe() == loaded.capabilities.describe()
    (tmp_path / "command.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not readable JSON"):
        CommandBackend.capabilities_for(tmp_path)
