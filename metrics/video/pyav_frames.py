"""PyAV decoding to NumPy frames, and the decoding process of `metrics.video.decode` (no torch, no Django).

This module imports only PyAV and NumPy, so that the decoding processes that `stream_video_pairs` spawns
start quickly. Every frame is converted with `VideoFrame.to_ndarray(format="rgb24")`: uint8 RGB `(H, W, 3)`,
the same conversion for ground truth and reconstruction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from multiprocessing import shared_memory
from typing import Any, Literal

import av
import numpy as np

PathLike = str | os.PathLike[str]
LengthMismatch = Literal["error", "truncate"]


class VideoPairMismatch(ValueError):
    """A ground-truth video and its reconstruction differ in frame count or frame size."""


def iter_decoded_frames(
    path: PathLike, *, decoder_threads: int = 0, max_frames: int | None = None
) -> Generator[np.ndarray, None, None]:
    """Every frame of the first video stream, in display order, as uint8 RGB `(H, W, 3)` arrays.

    `decoder_threads`: FFmpeg's decoding threads (0: as many as it likes; 1: none).
    """
    for _, frame in iter_selected_frames(path, decoder_threads=decoder_threads, max_frames=max_frames):
        yield frame


def iter_selected_frames(
    path: PathLike,
    wanted: Callable[[int], bool] | None = None,
    *,
    decoder_threads: int = 0,
    max_frames: int | None = None,
) -> Generator[tuple[int, np.ndarray], None, None]:
    """(index, uint8 RGB `(H, W, 3)` frame) for the frames whose display index `wanted(index)` accepts (all
    without `wanted`). Every frame is decoded (a frame depends on the ones before it), but only the wanted
    ones are converted to RGB and allocated."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = decoder_threads
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and index >= max_frames:
                return
            if wanted is None or wanted(index):
                yield index, frame.to_ndarray(format="rgb24")


def count_video_packets(path: PathLike) -> int:
    """Packets of the first video stream, read without decoding: the number of frames decoding gives for
    the usual one-frame-per-packet codecs (H.264, HEVC, VP9, FFV1, ...). A guess to check, not a fact."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def iter_paired_frames(
    ground_truth: PathLike,
    reconstruction: PathLike,
    *,
    on_length_mismatch: LengthMismatch = "error",
    decoder_threads: int = 0,
    max_frames: int | None = None,
) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
    """Decode a ground-truth video and its reconstruction in step: pairs of uint8 RGB `(H, W, 3)` frames with
    the same index (the first `max_frames` of each, when given).

    Frame sizes must match. Frame counts must match unless `on_length_mismatch="truncate"`, which stops at
    the shorter video.
    """
    truth_frames = iter_decoded_frames(ground_truth, decoder_threads=decoder_threads, max_frames=max_frames)
    recon_frames = iter_decoded_frames(reconstruction, decoder_threads=decoder_threads, max_frames=max_frames)
    try:
        count = 0
        while True:
            truth = next(truth_frames, None)
            recon = next(recon_frames, None)
            if truth is None and recon is None:
                return
            if truth is None or recon is None:
                if on_length_mismatch == "truncate":
                    return
                shorter = "the ground truth" if truth is None else "the reconstruction"
                raise VideoPairMismatch(
                    f"frame counts differ: {shorter} ends after {count} frames, the other video has more "
                    f"({os.fspath(ground_truth)} vs {os.fspath(reconstruction)})"
                )
            if truth.shape != recon.shape:
                raise VideoPairMismatch(
                    f"frame sizes differ: {os.fspath(ground_truth)} is {truth.shape[1]}x{truth.shape[0]}, "
                    f"{os.fspath(reconstruction)} is {recon.shape[1]}x{recon.shape[0]}"
                )
            count += 1
            yield truth, recon
    finally:
        truth_frames.close()
        recon_frames.close()


def decode_into_ring(
    ring_name: str,
    slots: int,
    slot_bytes: int,
    tasks: Any,
    free_slots: Any,
    messages: Any,
    chunk_frames: int,
    decoder_threads: int,
    on_length_mismatch: LengthMismatch,
    max_frames: int | None = None,
) -> None:
    """Body of a decoding process. Takes (index, truth path, recon path) tasks until None; fills free slots of
    the shared ring with frame pairs laid out as (2, t, H, W, 3) (truth frames, then reconstruction frames),
    t <= `chunk_frames` and as many as fit; reports ("chunk", index, first frame, slot, t, H, W, seconds),
    ("end", index) after a pair's last chunk, ("error", index, text) on failure, and ("done",) at exit."""
    # Spawned processes share their parent's resource tracker, which records each segment once, so attaching
    # here does not make the segment outlive the parent's unlink.
    memory = shared_memory.SharedMemory(name=ring_name)
    ring = np.ndarray((slots, slot_bytes), dtype=np.uint8, buffer=memory.buf)
    try:
        while True:
            task = tasks.get()
            if task is None:
                return
            index, truth_path, recon_path = task
            try:
                _decode_pair_into_ring(
                    ring,
                    index,
                    truth_path,
                    recon_path,
                    free_slots,
                    messages,
                    chunk_frames,
                    decoder_threads,
                    on_length_mismatch,
                    max_frames,
                )
            except Exception as error:
                messages.put(("error", index, f"{type(error).__name__}: {error}"))
                return
    finally:
        del ring
        memory.close()
        messages.put(("done",))


def _decode_pair_into_ring(
    ring: np.ndarray,
    index: int,
    truth_path: str,
    recon_path: str,
    free_slots: Any,
    messages: Any,
    chunk_frames: int,
    decoder_threads: int,
    on_length_mismatch: LengthMismatch,
    max_frames: int | None,
) -> None:
    first = filled = per_slot = slot = height = width = 0
    view: np.ndarray | None = None
    started = time.perf_counter()

    def send() -> None:
        nonlocal first, view, filled, started
        messages.put(("chunk", index, first, slot, filled, height, width, time.perf_counter() - started))
        first += filled
        view, filled = None, 0
        started = time.perf_counter()

    for truth, recon in iter_paired_frames(
        truth_path,
        recon_path,
        on_length_mismatch=on_length_mismatch,
        decoder_threads=decoder_threads,
        max_frames=max_frames,
    ):
        if view is None:
            height, width = truth.shape[:2]
            per_slot = min(chunk_frames, ring.shape[1] // (2 * truth.size))
            if per_slot < 1:
                raise ValueError(
                    f"a {width}x{height} frame pair does not fit a ring slot of {ring.shape[1]} bytes"
                )
            slot = free_slots.get()
            view = ring[slot, : 2 * per_slot * truth.size].reshape(2, per_slot, *truth.shape)
        view[0, filled] = truth
        view[1, filled] = recon
        filled += 1
        if filled == per_slot:
            send()
    if view is not None and filled:
        # Close the gap so that the slot holds (2, filled, H, W, 3) contiguously, as the consumer reads it.
        frame_bytes = height * width * 3
        ring[slot, filled * frame_bytes : 2 * filled * frame_bytes] = ring[
            slot, per_slot * frame_bytes : (per_slot + filled) * frame_bytes
        ].copy()
        send()
    if first == 0:
        raise ValueError("no video frames")
    messages.put(("end", index))
