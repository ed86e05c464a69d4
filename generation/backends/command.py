"""The command backend: a model with its own code and environment, run as a subprocess per video.

For a model whose official code pins its own torch and libraries (the Step-Video-T2V repository), the
site does not import that code: it runs a configured command, one process per video, and reads the video
back. The configuration comes from `options` or from `command.json` in the checkpoint folder (options
win, key by key):

    {
      "command": ["/opt/stepvideo/.venv/bin/python", "run_t2v.py", "--prompt", "{prompt}",
                  "--seed", "{seed}", "--steps", "{steps}", "--out", "{output}"],
      "cwd": ".",                       # relative to the checkpoint folder (default: the folder itself)
      "env": {"PYTHONPATH": "/opt/stepvideo"},
      "family": "stepvideo",
      "frame_rule": {"multiple": 17, "offset": 0},
      "resolution_multiple": 16,
      "latent": {"channels": 64, "spatial_compression": 16, "temporal_compression": 8},
      "sampler": "flow matching ...",
      "negative_prompt": true,
      "defaults": {"height": 544, "width": 992, "frames": 204, "fps": 25, "steps": 50,
                   "guidance_scale": 9.0, "flow_shift": 13.0},
      "timeout_s": 7200
    }

Placeholders, replaced inside each argument (the command is never run through a shell): {prompt},
{negative_prompt}, {seed}, {settings} (the resolved settings as JSON), {output} (the video file the
command must write, .mp4), {checkpoint}, {python} (this interpreter), {latents} (a safetensors file whose
tensor "latents", (C, F', H', W') float32, is the initial noise to start from; needs "latent" in the
configuration) and every setting by name ({steps}, {height}, ...). A command without {latents} draws
its own noise from the seed: it cannot take explicit latents or noise ids, and the videos it returns
carry `initial_latents=None`. On a CUDA device other than the first, CUDA_VISIBLE_DEVICES is set to its
index unless `env` sets it.

The line protocol on the command's standard output (every other line is only logged):
    PROGRESS <done>/<total>     after each denoising step
    INFO <json object>          recorded in the video's info (e.g. the environment's torch version)
    REJECTED <reason>           the command refuses this prompt (PromptRejected)
A zero exit status and the output file mean success; otherwise a BackendError carries the exit status and
the tail of standard error (OutOfMemory where stderr says the device ran out of memory). `should_stop()`
is asked while the command runs; on True its whole process group gets SIGTERM, then SIGKILL after
`kill_grace_s`, and GenerationCancelled is raised.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .base import (
    Backend,
    BackendError,
    Capabilities,
    CheckpointError,
    FrameRule,
    GeneratedVideo,
    GenerationCancelled,
    GenerationRequest,
    OutOfMemory,
    ProgressCallback,
    PromptRejected,
    SettingsError,
    SettingSpec,
    StopCallback,
    check_stop,
)

CONFIG_FILE = "command.json"
FIXED_PLACEHOLDERS = (
    "prompt",
    "negative_prompt",
    "seed",
    "settings",
    "output",
    "checkpoint",
    "python",
    "latents",
)
BASE_DEFAULTS: dict[str, Any] = {"height": 480, "width": 832, "frames": 81, "fps": 24.0, "steps": 50}
STDERR_TAIL_LINES = 40
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PROGRESS = re.compile(r"^PROGRESS\s+(\d+)\s*/\s*(\d+)\s*$")
_OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemoryError", re.IGNORECASE)


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """(frames (F, H, W, 3) uint8, fps) of a video file, decoded with PyAV."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    except (av.FFmpegError, IndexError, OSError) as error:
        raise BackendError(f"the command's output {path.name} is not a readable video: {error}") from None
    if not frames:
        raise BackendError(f"the command's output {path.name} holds no frames")
    return np.stack(frames), float(rate) if rate else 0.0


def _setting_kind(value: Any) -> type:
    for kind in (bool, int, float):
        if isinstance(value, kind):
            return kind
    return str


class CommandBackend(Backend):
    name = "command"

    def __init__(self, checkpoint: Path, config: Mapping[str, Any], device: torch.device):
        self.checkpoint = checkpoint
        self.config = dict(config)
        self.device = device
        self.template: list[str] = [str(part) for part in config["command"]]
        self.placeholders = {name for part in self.template for name in _PLACEHOLDER.findall(part)}
        self.takes_latents = "latents" in self.placeholders
        self.kill_grace_s = float(config.get("kill_grace_s", 5.0))
        self.timeout_s = float(config["timeout_s"]) if config.get("timeout_s") else None
        self.capabilities = self._capabilities()
        unknown = (
            self.placeholders - set(FIXED_PLACEHOLDERS) - {spec.name for spec in self.capabilities.settings}
        )
        if unknown:
            raise CheckpointError(f"the command names unknown placeholders: {sorted(unknown)}")
        if "output" not in self.placeholders:
            raise CheckpointError("the command must take the output path ({output})")
        if self.takes_latents and "latent" not in config:
            raise CheckpointError('a command taking {latents} needs "latent" (channels and compression)')

    @classmethod
    def capabilities_for(
        cls, checkpoint: Path, *, adapter: Path | None = None, options: Mapping[str, Any] | None = None
    ) -> Capabilities:
        """Loading a command backend reads its configuration only (no model): the loaded one's capabilities."""
        return cls.load(checkpoint, adapter=adapter, options=options).capabilities

    @classmethod
    def load(
        cls,
        checkpoint: Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        adapter: Path | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> CommandBackend:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_dir():
            raise CheckpointError(f"checkpoint folder {checkpoint} does not exist or is not a folder")
        if adapter is not None:
            raise CheckpointError("the command backend takes no adapter (configure it in the command)")
        config: dict[str, Any] = {}
        config_path = checkpoint / CONFIG_FILE
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text())
            except (OSError, ValueError) as error:
                raise CheckpointError(f"{config_path} is not readable JSON: {error}") from None
            if not isinstance(config, dict):
                raise CheckpointError(f"{config_path} must hold a JSON object")
        config.update(options or {})
        command = config.get("command")
        if not command or not isinstance(command, list) or not all(isinstance(part, str) for part in command):
            raise CheckpointError(
                f"no command configured: give options['command'] or {CONFIG_FILE} in {checkpoint} "
                "with a list of arguments"
            )
        cwd = checkpoint / str(config.get("cwd", "."))
        if not cwd.is_dir():
            raise CheckpointError(f"the command's working folder {cwd} does not exist")
        return cls(checkpoint, config, torch.device(device))

    def _capabilities(self) -> Capabilities:
        config = self.config
        defaults = {**BASE_DEFAULTS, **dict(config.get("defaults", {}))}
        rule = config.get("frame_rule", {"multiple": 1, "offset": 0})
        if isinstance(rule, list):
            rule = {"multiple": rule[0], "offset": rule[1] if len(rule) > 1 else 0}
        latent = dict(config.get("latent", {}))
        negative = bool(config.get("negative_prompt", True))
        settings = [
            SettingSpec(name, _setting_kind(value), value, minimum=1 if name in BASE_DEFAULTS else None)
            for name, value in defaults.items()
            if name != "negative_prompt"
        ]
        if negative:
            settings.append(SettingSpec("negative_prompt", str, str(defaults.get("negative_prompt", ""))))
        return Capabilities(
            family=str(config.get("family", "command")),
            frame_rule=FrameRule(int(rule["multiple"]), int(rule.get("offset", 0))),
            resolution_multiple=int(config.get("resolution_multiple", 16)),
            latent_channels=int(latent.get("channels", 0)),
            spatial_compression=int(latent.get("spatial_compression", 1)),
            temporal_compression=int(latent.get("temporal_compression", 1)),
            sampler=str(config.get("sampler", "the command's own sampler")),
            settings=tuple(settings),
            supports_negative_prompt=negative,
        )

    def arguments(self, values: Mapping[str, str]) -> list[str]:
        return [
            _PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), part) for part in self.template
        ]

    def generate(
        self,
        request: GenerationRequest,
        *,
        progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[GeneratedVideo]:
        settings = self.settings_for(request)
        if request.latents is not None and not self.takes_latents:
            raise SettingsError(
                "latents", "this command draws its own noise from the seed ({latents} not in it)"
            )
        latents = self.latents_for(request, settings) if self.takes_latents else None
        check_stop(should_stop)
        videos = []
        count = len(request.prompts)
        for index, prompt in enumerate(request.prompts):

            def report(done: int, total: int, index: int = index) -> None:
                if progress is not None:
                    progress(index * total + min(done, total), count * total)

            seed = request.seeds[index] if request.seeds is not None else None
            initial = latents[index] if latents is not None else None
            videos.append(self._one(prompt, seed, initial, settings, report, should_stop))
        return videos

    def _one(
        self,
        prompt: str,
        seed: int | None,
        latents: torch.Tensor | None,
        settings: Mapping[str, Any],
        report: Any,
        should_stop: StopCallback | None,
    ) -> GeneratedVideo:
        work = Path(tempfile.mkdtemp(prefix="t2v-command-", dir=self.config.get("work_dir")))
        try:
            output = work / "video.mp4"
            values = {name: str(value) for name, value in settings.items()}
            values.update(
                prompt=prompt,
                negative_prompt=str(settings.get("negative_prompt", "")),
                seed="" if seed is None else str(seed),
                settings=json.dumps(dict(settings), sort_keys=True),
                output=str(output),
                checkpoint=str(self.checkpoint),
                python=sys.executable,
            )
            if latents is not None:
                from safetensors.torch import save_file

                values["latents"] = str(work / "latents.safetensors")
                save_file({"latents": latents.contiguous()}, values["latents"])
            reported: dict[str, Any] = {}
            status = self._run(self.arguments(values), report, should_stop, reported)
            if not output.is_file():
                raise BackendError(f"the command exited 0 but wrote no video to {{output}} ({output.name})")
            frames, fps = read_video(output)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return GeneratedVideo(
            frames=frames,
            fps=fps or float(settings["fps"]),
            initial_latents=latents,
            seed=seed,
            info={
                "backend": self.name,
                "family": self.capabilities.family,
                "checkpoint": str(self.checkpoint),
                "adapter": None,
                "command": self.template,
                "exit_status": status,
                "settings": dict(settings),
                "device": str(self.device),
                "command_info": reported,
                "versions": {"torch": torch.__version__},
            },
        )

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        configured = {str(key): str(value) for key, value in dict(self.config.get("env", {})).items()}
        if (
            self.device.type == "cuda"
            and self.device.index is not None
            and "CUDA_VISIBLE_DEVICES" not in configured
        ):
            env["CUDA_VISIBLE_DEVICES"] = str(self.device.index)
        env.update(configured)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _run(
        self,
        arguments: list[str],
        report: Any,
        should_stop: StopCallback | None,
        reported: dict[str, Any],
    ) -> int:
        try:
            process = subprocess.Popen(
                arguments,
                cwd=self.checkpoint / str(self.config.get("cwd", ".")),
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,  # its own process group, so cancel kills its children too
            )
        except OSError as error:
            raise BackendError(f"the command could not be started: {error}") from None
        lines: queue.Queue[str | None] = queue.Queue()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        assert process.stdout is not None and process.stderr is not None
        readers = [
            threading.Thread(
                target=_pump, args=(process.stdout, lines.put), kwargs={"mark_end": True}, daemon=True
            ),
            threading.Thread(target=_pump, args=(process.stderr, stderr_tail.append), daemon=True),
        ]
        for reader in readers:
            reader.start()
        started = time.monotonic()
        rejected: str | None = None
        stdout_open = True
        try:
            while stdout_open or process.poll() is None:
                if should_stop is not None and should_stop():
                    self._kill(process)
                    raise GenerationCancelled()
                if self.timeout_s is not None and time.monotonic() - started > self.timeout_s:
                    self._kill(process)
                    raise BackendError(
                        f"the command ran past its timeout of {self.timeout_s:.0f} s and was killed"
                    )
                try:
                    line = lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                if line is None:
                    stdout_open = False
                    continue
                rejected = _protocol_line(line.strip(), report, reported) or rejected
        except BaseException:
            if process.poll() is None:
                self._kill(process)
            raise
        status = process.wait()
        for reader in readers:
            reader.join(timeout=5)
        if rejected is not None:
            raise PromptRejected(rejected)
        if status != 0:
            tail = "".join(stderr_tail).strip()
            message = f"the command exited with status {status}; stderr ends: {tail[-2000:] or '(empty)'}"
            if _OUT_OF_MEMORY.search(tail):
                raise OutOfMemory(message, "lower frames or height/width")
            raise BackendError(message)
        return status

    def _kill(self, process: subprocess.Popen[str]) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=self.kill_grace_s)
                return
            except subprocess.TimeoutExpired:
                continue


def _pump(stream: IO[str], put: Any, *, mark_end: bool = False) -> None:
    for line in stream:
        put(line)
    stream.close()
    if mark_end:
        put(None)


def _protocol_line(line: str, report: Any, reported: dict[str, Any]) -> str | None:
    """Act on one line of the protocol; the reason of a REJECTED line, else None."""
    match = _PROGRESS.match(line)
    if match:
        done, total = int(match[1]), int(match[2])
        if total > 0:
            report(done, total)
    elif line.startswith("INFO "):
        try:
            value = json.loads(line[5:])
        except ValueError:
            return None
        if isinstance(value, dict):
            reported.update(value)
    elif line.startswith("REJECTED"):
        return line[len("REJECTED") :].strip() or "the command rejected the prompt"
    return None
