"""What a campaign's own renditions cost, and what they hide, on the demo clips (no Django, no database).

Every campaign re-encodes its videos with its own x264 settings (quality factor and aq strength; this
script varies the quality factor) and pads every video (and poster) to one size: the campaign's largest
plus a kibibyte and a share of its own (annotation.renditions). For `--prompts` x 2
models x `--seeds` demo clips this script encodes the library's playable copy (crf 20, the reference) and
two campaigns' renditions (`--crf-a`, `--crf-b`, two values a campaign may draw: 19 to 21), then prints
- seconds to encode one clip, per campaign and for the library copy, and their ratio;
- bytes served per campaign (every file padded to the campaign's largest plus 1 KiB and `--margin`) against the
  bytes encoded, and against the library copies: the padding's cost in bandwidth and disk;
- how many clips are byte-identical, or of identical size, across the two campaigns (the blinding goal: 0),
  and how well a clip's size tells the two models apart before padding (the share of clips whose model a
  size threshold guesses right; 0.5 is chance), which padding brings to exactly chance.

Example:
    python perf/campaign_media.py --prompts 8 --seeds 2
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from generation.demo_clips import demo_plan, render_clip, write_clip  # noqa: E402
from generation.videofiles import DEFAULT_CRF, padded_size, transcode_for_browser  # noqa: E402


def best_threshold_accuracy(sizes_a: list[int], sizes_b: list[int]) -> float:
    """The share of clips whose model one size threshold (either way round) guesses right."""
    labelled = sorted([(s, 0) for s in sizes_a] + [(s, 1) for s in sizes_b])
    best = 0.5
    for cut in range(len(labelled) + 1):
        below_b = sum(1 for _, label in labelled[:cut] if label == 1)
        above_a = sum(1 for _, label in labelled[cut:] if label == 0)
        right = (cut - below_b) + (len(labelled) - cut - above_a)
        best = max(best, right / len(labelled), 1 - right / len(labelled))
    return best


def encode_all(clips: list[Path], folder: Path, crf: float) -> tuple[list[Path], float]:
    folder.mkdir(parents=True, exist_ok=True)
    outputs, started = [], time.perf_counter()
    for index, clip in enumerate(clips):
        out = folder / f"{index}.mp4"
        transcode_for_browser(clip, out, folder / f"{index}.jpg", crf=crf)
        outputs.append(out)
    return outputs, (time.perf_counter() - started) / len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--crf-a", type=float, default=19.37)
    parser.add_argument("--crf-b", type=float, default=20.64)
    parser.add_argument("--margin", type=float, default=0.015, help="share past the largest (0 to 0.03)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plan = demo_plan(list(range(args.prompts)), seeds=list(range(args.seeds)))
        clips, models = [], []
        for index, (_prompt, model, seed, kind) in enumerate(plan):
            path = folder / "originals" / f"{index}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_clip(render_clip(kind, seed=seed + 100 * index), path, 24)
            clips.append(path)
            models.append(model)
        library, library_s = encode_all(clips, folder / "library", DEFAULT_CRF)
        campaign_a, a_s = encode_all(clips, folder / "a", args.crf_a)
        campaign_b, b_s = encode_all(clips, folder / "b", args.crf_b)

        def sizes(paths: list[Path]) -> list[int]:
            return [p.stat().st_size for p in paths]

        library_bytes = sum(sizes(library))
        print(f"{len(clips)} demo clips (320x192, 2 s, 24 fps), {len(set(models))} models")
        print(f"encode one clip: library {library_s * 1000:.0f} ms, campaign A {a_s * 1000:.0f} ms, "
              f"campaign B {b_s * 1000:.0f} ms (ratio {a_s / library_s:.2f}, {b_s / library_s:.2f})")  # fmt: skip
        for name, paths in (("A", campaign_a), ("B", campaign_b)):
            encoded = sizes(paths)
            served = padded_size(max(encoded), args.margin) * len(paths)
            print(f"campaign {name}: encoded {sum(encoded) / 1e6:.2f} MB, served {served / 1e6:.2f} MB padded "
                  f"({served / sum(encoded):.2f}x encoded, {served / library_bytes:.2f}x the library copies)")  # fmt: skip
        same_bytes = sum(
            hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
            for a, b in zip(campaign_a, campaign_b, strict=True)
        )
        same_size = sum(a == b for a, b in zip(sizes(campaign_a), sizes(campaign_b), strict=True))
        served_a, served_b = (padded_size(max(sizes(p)), args.margin) for p in (campaign_a, campaign_b))
        print(f"across the two campaigns: {same_bytes} of {len(clips)} clips byte-identical, {same_size} of "
              f"the same encoded size; every clip served at {served_a} bytes in A, {served_b} in B")  # fmt: skip
        first = models[0]
        by_model = [[s for s, m in zip(sizes(library), models, strict=True) if (m == first) == side]
                    for side in (True, False)]  # fmt: skip
        print(
            f"a size threshold tells the models apart in {best_threshold_accuracy(*by_model):.0%} of the "
            "library's clips; padded, every clip of a campaign has one size (50%, chance)"
        )


if __name__ == "__main__":
    main()
