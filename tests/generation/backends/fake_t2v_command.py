"""A stand-in text-to-video program for the command backend's protocol tests.

It speaks the protocol of `generation.backends.command`: prints `INFO {...}`, one `PROGRESS i/n` line per
"denoising step", and writes a real H.264 video with PyAV whose pixels depend on the seed, the prompt
length and (when given) the initial latents. Flags make it misbehave the ways a real model does.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import av
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--seed", required=True, help="empty when the backend passes initial latents")
    parser.add_argument("--settings", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--latents")
    parser.add_argument("--step-seconds", type=float, default=0.0)
    parser.add_argument("--pid-file")
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    settings = json.loads(args.settings)
    if args.pid_file:
        # A child of its own, as a real model's data loaders or launchers have: cancel must kill it too.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(args.pid_file, "w") as handle:
            handle.write(f"{os.getpid()} {child.pid}")
    print("INFO " + json.dumps({"program": "fake_t2v_command", "python": sys.version.split()[0]}), flush=True)
    print("loading the model (a log line the backend ignores)", flush=True)
    if "forbidden" in args.prompt:
        print("REJECTED the prompt names a forbidden thing", flush=True)
        return 0
    steps = int(settings["steps"])
    for step in range(1, steps + 1):
        time.sleep(args.step_seconds)
        print(f"PROGRESS {step}/{steps}", flush=True)
        if args.fail and step == 1:
            print("Traceback (most recent call last):\nRuntimeError: the sampler diverged", file=sys.stderr)
            return 3
    offset = 0.0
    if args.latents:
        from safetensors.numpy import load_file

        offset = float(load_file(args.latents)["latents"].mean())
    rng = np.random.default_rng(int(args.seed or 0))
    height, width, frames = int(settings["height"]), int(settings["width"]), int(settings["frames"])
    base = rng.integers(0, 200, size=3) + len(args.prompt) % 50 + int(offset * 10)
    with av.open(args.out, "w") as container:
        stream = container.add_stream("libx264", rate=int(settings["fps"]))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            image = np.empty((height, width, 3), dtype=np.uint8)
            image[:] = np.clip(base + index * 4, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
