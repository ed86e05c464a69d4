"""Video decoding for the reconstruction metrics: PyAV, in chunks, with bounded memory (no Django).

Every video, ground truth and reconstruction alike, goes through the same path: PyAV decodes the first video
stream and each frame is converted with `VideoFrame.to_ndarray(format="rgb24")` (FFmpeg's swscale with
the stream's colour space, limited range as tagged), giving uint8 RGB. Chunks are uint8 tensors of layout
`(t, H, W, 3)` (frames, height, width, RGB; see `metrics.video.frames`) with 1 <= t <= `chunk_frames`.

Memory bounds, however many videos there are:
- `iter_frame_chunks` holds one chunk (`chunk_frames * H * W * 3` bytes; 17.7 MB for 16 frames at
  480x768) plus FFmpeg's decoder queue (about `decoder_threads` + 2 frames).
- `stream_video_pairs` with threads (default) holds at most `prefetch_chunks + 2 * workers + 1`
  ground-truth/reconstruction chunk pairs on the host (the queue, a filling and a finished chunk per worker,
  the consumer's), each `2 * chunk_frames * H * W * 3` bytes, plus one decoded frame pair per worker
  (`host_pair_buffer_bound`; defaults at 480x768: 17 pairs, 602 MB, whatever the length of the videos);
  with `processes=True`, a ring of `ring_slots` shared-memory slots of
  `slot_megabytes` each (page-locked for a CUDA device; default 2 * workers + 4 slots of 40 MB). On the
  device it keeps one chunk pair per video in flight (the chunk is held until it is known whether it is the
  video's last).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import shared_memory

import av
import numpy as np
import torch

from generation.video_writer import write_frames
from metrics.video.pyav_frames import (
    LengthMismatch,
    PathLike,
    VideoPairMismatch,
    decode_into_ring,
    iter_decoded_frames,
    iter_paired_frames,
)

DEFAULT_CHUNK_FRAMES = 16
DEFAULT_WORKERS = 4
DEFAULT_PREFETCH_CHUNKS = 8
DEFAULT_SLOT_MEGABYTES = 40


@dataclass(frozen=True)
class VideoStreamInfo:
    width: int
    height: int
    frames: int  # as the container declares it; 0 when unknown
    fps: float


def probe_video(path: PathLike) -> VideoStreamInfo:
    """Size, declared frame count and frame rate of the first video stream (no decoding)."""
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 0
        return VideoStreamInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=int(stream.frames or 0),
            fps=float(rate),
        )


def _chunk_buffer(shape: tuple[int, ...], pin_memory: bool) -> torch.Tensor:
    """A uint8 chunk buffer: page-locked for a GPU, else NumPy-allocated (so that `tracemalloc` sees the
    host's frame buffers, which is how the tests check the memory bounds)."""
    if pin_memory:
        return torch.empty(shape, dtype=torch.uint8, pin_memory=True)
    return torch.from_numpy(np.empty(shape, dtype=np.uint8))


def host_pair_buffer_bound(
    height: int,
    width: int,
    *,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    workers: int = DEFAULT_WORKERS,
    prefetch_chunks: int = DEFAULT_PREFETCH_CHUNKS,
) -> int:
    """Most bytes of decoded frames `stream_video_pairs` (threads) holds on the host at once, whatever the
    number and length of the videos: `(prefetch_chunks + 2 * workers + 1)` chunk pairs of
    `2 * chunk_frames * H * W * 3` bytes, plus one decoded frame pair per worker."""
    frame = height * width * 3
    return (prefetch_chunks + 2 * workers + 1) * 2 * chunk_frames * frame + workers * 2 * frame


def iter_frame_chunks(
    path: PathLike,
    *,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    max_frames: int | None = None,
    decoder_threads: int = 0,
    pin_memory: bool = False,
) -> Generator[torch.Tensor, None, None]:
    """Decode a video into uint8 chunks `(t, H, W, 3)`, t <= `chunk_frames`, in display order.

    `pin_memory`: allocate chunks in page-locked memory, for asynchronous copies to a GPU. Each chunk is a
    fresh tensor that the caller may keep.
    """
    if chunk_frames < 1:
        raise ValueError("chunk_frames must be at least 1")
    chunk: torch.Tensor | None = None
    filled = 0
    for number, array in enumerate(
        iter_decoded_frames(path, decoder_threads=decoder_threads, max_frames=max_frames)
    ):
        if chunk is None:
            chunk = _chunk_buffer((chunk_frames, *array.shape), pin_memory)
        elif array.shape != tuple(chunk.shape[1:]):
            raise ValueError(f"{os.fspath(path)}: frame size changes mid-stream at frame {number}")
        chunk[filled].copy_(torch.from_numpy(array))
        filled += 1
        if filled == chunk_frames:
            yield chunk
            chunk, filled = None, 0
    if chunk is not None and filled:
        yield chunk[:filled]


def decode_video(path: PathLike, *, max_frames: int | None = None, decoder_threads: int = 0) -> torch.Tensor:
    """All frames (or the first `max_frames`) of a video as one uint8 tensor `(T, H, W, 3)`.

    Memory is T * H * W * 3 bytes; prefer `iter_frame_chunks` for long videos.
    """
    chunks = list(iter_frame_chunks(path, max_frames=max_frames, decoder_threads=decoder_threads))
    if not chunks:
        raise ValueError(f"{os.fspath(path)}: no video frames")
    return torch.cat(chunks)


def iter_paired_chunks(
    ground_truth: PathLike,
    reconstruction: PathLike,
    *,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    on_length_mismatch: LengthMismatch = "error",
    decoder_threads: int = 0,
    pin_memory: bool = False,
    max_frames: int | None = None,
) -> Generator[tuple[torch.Tensor, torch.Tensor], None, None]:
    """`iter_paired_frames` gathered into pairs of uint8 chunks `(t, H, W, 3)` holding the same frame indices."""
    if chunk_frames < 1:
        raise ValueError("chunk_frames must be at least 1")
    pairs = iter_paired_frames(
        ground_truth,
        reconstruction,
        on_length_mismatch=on_length_mismatch,
        decoder_threads=decoder_threads,
        max_frames=max_frames,
    )
    chunk: torch.Tensor | None = None  # (2, chunk_frames, H, W, 3): truth and reconstruction
    filled = 0
    try:
        for truth, recon in pairs:
            if chunk is None:
                chunk = _chunk_buffer((2, chunk_frames, *truth.shape), pin_memory)
            elif truth.shape != tuple(chunk.shape[2:]):
                raise ValueError(f"{os.fspath(ground_truth)}: frame size changes mid-stream")
            chunk[0, filled].copy_(torch.from_numpy(truth))
            chunk[1, filled].copy_(torch.from_numpy(recon))
            filled += 1
            if filled == chunk_frames:
                yield chunk[0], chunk[1]
                chunk, filled = None, 0
        if chunk is not None and filled:
            yield chunk[0, :filled], chunk[1, :filled]
    finally:
        pairs.close()


@dataclass
class PairChunk:
    """Consecutive frames of one ground-truth/reconstruction pair, on the target device."""

    video_index: int
    first_frame: int
    ground_truth: torch.Tensor  # (t, H, W, 3) uint8
    reconstruction: torch.Tensor  # (t, H, W, 3) uint8
    is_last: bool  # the video's last chunk


@dataclass
class DecodeStats:
    """Where decoding time went: worker-seconds spent decoding (summed over workers), and consumer seconds
    spent waiting for decoded chunks and copying them to the device."""

    decode_worker_s: float = 0.0
    wait_s: float = 0.0
    transfer_s: float = 0.0
    frames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_decode(self, seconds: float, frames: int) -> None:
        with self._lock:
            self.decode_worker_s += seconds
            self.frames += frames


def stream_video_pairs(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    device: torch.device | str = "cpu",
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    workers: int = DEFAULT_WORKERS,
    prefetch_chunks: int = DEFAULT_PREFETCH_CHUNKS,
    decoder_threads: int = 1,
    on_length_mismatch: LengthMismatch = "error",
    processes: bool = False,
    ring_slots: int | None = None,
    slot_megabytes: float = DEFAULT_SLOT_MEGABYTES,
    stats: DecodeStats | None = None,
    sync_transfers: bool = False,
    max_frames: int | None = None,
) -> Iterator[PairChunk]:
    """Decode (ground truth, reconstruction) pairs with `workers` workers and yield their chunks on `device`.

    Each worker decodes whole pairs, one at a time, in step (`iter_paired_frames`), so the chunks of one video
    arrive in order, but chunks of different videos interleave: use `video_index`, `first_frame` and
    `is_last`. Workers are threads by default. `processes=True` uses spawned processes instead (no GIL
    contention, so it scales with cores), which write frames into a ring of shared-memory slots that is
    page-locked for a CUDA device; it cannot run inside a daemonic process (e.g. Celery's prefork pool).
    Copies to a CUDA device are asynchronous; `sync_transfers=True` waits for each, so that
    `stats.transfer_s` measures them (profiling only). `max_frames` keeps the first frames of each video. A
    failure in a worker is raised here as `VideoFailed`, naming the pair. Memory: see the module
    docstring (`host_pair_buffer_bound` for threads).
    """
    stats = stats if stats is not None else DecodeStats()
    options = {
        "device": torch.device(device),
        "chunk_frames": chunk_frames,
        "workers": max(1, min(workers, len(pairs))),
        "decoder_threads": decoder_threads,
        "on_length_mismatch": on_length_mismatch,
        "stats": stats,
        "sync_transfers": sync_transfers,
        "max_frames": max_frames,
    }
    if not pairs:
        return iter(())
    if processes:
        slots = ring_slots if ring_slots is not None else 2 * options["workers"] + 4  # type: ignore[operator]
        return _stream_with_processes(pairs, slots=slots, slot_bytes=int(slot_megabytes * 2**20), **options)  # type: ignore[arg-type]
    return _stream_with_threads(pairs, prefetch_chunks=prefetch_chunks, **options)  # type: ignore[arg-type]


def processes_allowed() -> bool:
    """Whether this process may start decoding processes (a daemonic one, e.g. in Celery's prefork pool,
    may not)."""
    return not multiprocessing.current_process().daemon


class VideoFailed(RuntimeError):
    """Decoding or measuring video `video_index` (given by `paths`: a pair, or one file) failed; `reason`
    says why."""

    def __init__(self, paths: Sequence[PathLike], video_index: int, reason: object) -> None:
        kind = "video pair" if len(paths) == 2 else "video"
        names = ", ".join(os.fspath(path) for path in paths)
        super().__init__(f"decoding {kind} {video_index} ({names}) failed: {reason}")
        self.video_index = video_index
        self.reason = str(reason)


class _WorkerDone:
    pass


# (video index, first frame, ground-truth chunk, reconstruction chunk, is the video's last chunk)
_DecodedChunk = tuple[int, int, torch.Tensor, torch.Tensor, bool]


@dataclass
class _WorkerFailure:
    video_index: int
    error: BaseException


def _stream_with_threads(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    device: torch.device,
    chunk_frames: int,
    workers: int,
    prefetch_chunks: int,
    decoder_threads: int,
    on_length_mismatch: LengthMismatch,
    stats: DecodeStats,
    sync_transfers: bool,
    max_frames: int | None,
) -> Iterator[PairChunk]:
    pin = device.type == "cuda"
    indices: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(pairs)):
        indices.put(index)
    outbox: queue.Queue[_DecodedChunk | _WorkerDone | _WorkerFailure] = queue.Queue(
        maxsize=max(1, prefetch_chunks)
    )
    stop = threading.Event()

    def put(item: _DecodedChunk | _WorkerDone | _WorkerFailure) -> bool:
        while not stop.is_set():
            try:
                outbox.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    index = indices.get_nowait()
                except queue.Empty:
                    return
                truth_path, recon_path = pairs[index]
                try:
                    chunks = iter_paired_chunks(
                        truth_path,
                        recon_path,
                        chunk_frames=chunk_frames,
                        on_length_mismatch=on_length_mismatch,
                        decoder_threads=decoder_threads,
                        pin_memory=pin,
                        max_frames=max_frames,
                    )
                    first_frame = 0
                    held: tuple[torch.Tensor, torch.Tensor] | None = None
                    started = time.perf_counter()
                    for pair in chunks:
                        stats.add_decode(time.perf_counter() - started, int(pair[0].shape[0]))
                        if held is not None:
                            if not put((index, first_frame, held[0], held[1], False)):
                                return
                            first_frame += int(held[0].shape[0])
                        held = pair
                        started = time.perf_counter()
                    if held is None:
                        raise ValueError("no video frames")
                    if not put((index, first_frame, held[0], held[1], True)):
                        return
                except Exception as error:  # reported to the consumer, which raises it
                    put(_WorkerFailure(index, error))
                    return
        finally:
            put(_WorkerDone())

    threads = [threading.Thread(target=work, name=f"video-decode-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            waited = time.perf_counter()
            item = outbox.get()
            stats.wait_s += time.perf_counter() - waited
            if isinstance(item, _WorkerDone):
                running -= 1
                continue
            if isinstance(item, _WorkerFailure):
                raise VideoFailed(pairs[item.video_index], item.video_index, item.error) from item.error
            index, first_frame, truth, recon, is_last = item
            copied = time.perf_counter()
            truth = truth.to(device, non_blocking=pin)
            recon = recon.to(device, non_blocking=pin)
            if sync_transfers and pin:
                torch.cuda.synchronize(device)
            stats.transfer_s += time.perf_counter() - copied
            yield PairChunk(index, first_frame, truth, recon, is_last)
    finally:
        stop.set()
        while True:
            try:
                outbox.get_nowait()
            except queue.Empty:
                break
        for thread in threads:
            thread.join(timeout=5)


def _stream_with_processes(
    pairs: Sequence[tuple[PathLike, PathLike]],
    *,
    device: torch.device,
    chunk_frames: int,
    workers: int,
    slots: int,
    slot_bytes: int,
    decoder_threads: int,
    on_length_mismatch: LengthMismatch,
    stats: DecodeStats,
    sync_transfers: bool,
    max_frames: int | None,
) -> Iterator[PairChunk]:
    if slots <= workers:
        raise ValueError(f"need more ring slots ({slots}) than workers ({workers})")
    cuda = device.type == "cuda"
    memory = shared_memory.SharedMemory(create=True, size=slots * slot_bytes)
    ring = torch.frombuffer(memory.buf, dtype=torch.uint8).view(slots, slot_bytes)
    registered = False
    if cuda:
        # Page-lock the shared ring so that copies from it are asynchronous DMA transfers.
        try:
            torch.cuda.check_error(torch.cuda.cudart().cudaHostRegister(ring.data_ptr(), ring.numel(), 0))
            registered = True
        except RuntimeError:
            registered = False  # still correct: copies from pageable memory are only slower
    context = multiprocessing.get_context("spawn")
    tasks = context.Queue()
    free_slots = context.Queue()
    messages = context.Queue()
    for slot in range(slots):
        free_slots.put(slot)
    for index, (truth_path, recon_path) in enumerate(pairs):
        tasks.put((index, os.fspath(truth_path), os.fspath(recon_path)))
    for _ in range(workers):
        tasks.put(None)
    worker_args = (memory.name, slots, slot_bytes, tasks, free_slots, messages, chunk_frames, decoder_threads)
    processes = [
        context.Process(
            target=decode_into_ring,
            args=(*worker_args, on_length_mismatch, max_frames),
            name=f"video-decode-{i}",
            daemon=True,
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    in_flight: deque[tuple[torch.cuda.Event, int]] = deque()
    held: dict[int, PairChunk] = {}
    frames: torch.Tensor | None = None

    def release_copied_slots() -> None:
        while in_flight and in_flight[0][0].query():
            free_slots.put(in_flight.popleft()[1])

    running = workers
    try:
        while running:
            waited = time.perf_counter()
            while True:
                release_copied_slots()
                try:
                    # Poll quickly while copies are in flight: their slots go back to the decoders.
                    message = messages.get(timeout=0.002 if in_flight else 1.0)
                    break
                except queue.Empty:
                    if not in_flight and not any(p.is_alive() for p in processes):
                        raise RuntimeError("every video decoding process exited unexpectedly") from None
            stats.wait_s += time.perf_counter() - waited
            kind = message[0]
            if kind == "done":
                running -= 1
            elif kind == "error":
                raise VideoFailed(pairs[message[1]], message[1], message[2])
            elif kind == "end":
                chunk = held.pop(message[1])
                chunk.is_last = True
                yield chunk
            else:
                _, index, first, slot, count, height, width, seconds = message
                stats.add_decode(seconds, count)
                copied = time.perf_counter()
                frames = ring[slot, : 2 * count * height * width * 3]
                if cuda:
                    on_device = frames.to(device, non_blocking=registered)
                    event = torch.cuda.Event()
                    event.record()
                    in_flight.append((event, slot))
                    if sync_transfers:
                        event.synchronize()
                    release_copied_slots()
                else:
                    on_device = frames.to(device, copy=True)
                    free_slots.put(slot)
                stats.transfer_s += time.perf_counter() - copied
                pair = on_device.view(2, count, height, width, 3)
                previous = held.pop(index, None)
                held[index] = PairChunk(index, first, pair[0], pair[1], is_last=False)
                if previous is not None:
                    yield previous
    finally:
        for process in processes:
            if process.is_alive() and running:
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        for channel in (tasks, free_slots, messages):
            channel.cancel_join_thread()
            channel.close()
        if cuda:
            torch.cuda.synchronize(device)
            if registered:
                torch.cuda.cudart().cudaHostUnregister(ring.data_ptr())
        del ring, frames
        try:
            memory.close()
        except BufferError:  # a view of the ring is still referenced somewhere; unlinking still frees it
            pass
        memory.unlink()


def write_video(
    path: PathLike,
    frames: np.ndarray | torch.Tensor,
    *,
    fps: int = 25,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> None:
    """Encode uint8 RGB frames `(T, H, W, 3)` (array or tensor) for tests and synthetic benchmarks, through
    the code base's one encoder (`generation.video_writer`, pure PyAV).

    "libx264" stores yuv420p (lossy); "libx264rgb" with options {"qp": "0"} and "ffv1" store RGB losslessly.
    """
    array = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    write_frames(path, array, rate=fps, codec=codec, options=options)


__all__ = [
    "DEFAULT_CHUNK_FRAMES",
    "DecodeStats",
    "LengthMismatch",
    "PairChunk",
    "PathLike",
    "VideoStreamInfo",
    "VideoFailed",
    "VideoPairMismatch",
    "decode_video",
    "iter_decoded_frames",
    "iter_frame_chunks",
    "iter_paired_chunks",
    "iter_paired_frames",
    "host_pair_buffer_bound",
    "probe_video",
    "processes_allowed",
    "stream_video_pairs",
    "write_video",
]
