"""`starch data check` (pre-flight scan of a dataset) and `starch data synth` (write the synthetic one).

`check` is the thing to run before a search on a new copy of a dataset, like mmaction2's
check_videos: it lists the videos the annotations name, opens every one in a decode child
(frame count, fps, size, and a decode of the first, middle and last frame), prints a summary and
every unusable file with its reason, and exits 1 if any listed file is unusable, so a broken
download is found before hundreds of trials each skip the same files. A decoder crash or hang
only marks that file unusable (see trainers.data.decode_process).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from trainers.data.clips import clip_span
from trainers.data.datasets import FORMATS, DataSpec, build_index, not_a_video_file
from trainers.data.synth import DEFAULT_LEVEL, LEVELS, describe_levels
from trainers.data.video import DECODERS, DEFAULT_DECODER

CHECK_EPILOG = """\
examples:
  starch data check ucf101 /data/ucf101 --split 1
  starch data check hmdb51 /data/hmdb51 --split 2 --subset test --bad-list bad.txt
  starch data check kinetics /data/k400 --workers 2 --timeout 120
  starch data check folder ~/my_videos
  starch data check ucf101 /data/ucf101 --frames 16 --sampling-rate 2   # the clips a search trains on

exit code: 0 all listed videos are usable, 1 some are not (listed with the reason), 2 bad input.
--bad-list writes one "path<TAB>reason" line per unusable file.
"""

SYNTH_EPILOG = """\
examples:
  starch data synth data/synth                      # 8 classes x 200 videos of 48 frames, 32x44
  starch data synth /tmp/tiny --classes 4 --videos-per-class 10 --frames 16
  starch data check ucf101 data/synth               # the result has the UCF101 layout
"""


def add_parser(subparsers) -> None:
    data = subparsers.add_parser(
        "data",
        help="check a video dataset, or write the synthetic one",
        description="Video dataset tools: `check` scans a dataset before training, `synth` writes "
        "the synthetic motion dataset.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  starch data check ucf101 /data/ucf101\n  starch data synth data/synth",
    )
    sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    check = sub.add_parser(
        "check",
        help="open every listed video and report the unusable ones",
        description=__doc__.split("\n\n")[1],
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("format", choices=FORMATS, metavar="FORMAT", help=f"one of {', '.join(FORMATS)}")
    check.add_argument("root", metavar="ROOT", help="dataset folder (or CSV file for format csv)")
    check.add_argument("--split", type=int, default=1, help="split number (default 1)")
    check.add_argument(
        "--subset", choices=("train", "test", "all"), default="all", help="which subset to scan (default all)"
    )
    check.add_argument("--video-root", help="where the videos are, if not under ROOT")
    check.add_argument("--annotation-root", help="where the split / CSV files are, if not under ROOT")
    check.add_argument(
        "--frames",
        type=int,
        metavar="L",
        help="clip length the experiment trains on: videos "
        "shorter than one clip are flagged and each video's last clip is decoded",
    )
    check.add_argument(
        "--sampling-rate", type=int, default=1, metavar="S", help="temporal sampling rate of those clips (default 1)"
    )
    check.add_argument("--bad-list", metavar="FILE", help="write the unusable files to FILE")
    check.add_argument("--workers", type=int, default=2, help="decode processes in parallel (default 2)")
    check.add_argument("--timeout", type=float, default=60.0, help="seconds per video (default 60)")
    check.add_argument(
        "--decoder",
        choices=tuple(DECODERS),
        default=DEFAULT_DECODER,
        help=f"video backend, as data.decoder (default {DEFAULT_DECODER})",
    )
    check.set_defaults(func=run_check)

    synth = sub.add_parser(
        "synth",
        help="write the synthetic motion dataset (real mp4 files, UCF101 layout)",
        description="Write the synthetic motion dataset: every class is a direction x speed profile "
        "(speeding up, slowing down, ...) of moving sprites among sprites that move like other classes, "
        "so only a network that sees time can solve it; --level sets how hard.",
        epilog=SYNTH_EPILOG + "\nlevels:\n" + "\n".join(f"  {line}" for line in describe_levels()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_argument("out", metavar="OUT", help="output folder")
    synth.add_argument("--classes", type=int, default=8, help="number of classes: 4, 8, 12 or 16 (default 8)")
    synth.add_argument("--videos-per-class", type=int, default=200, help="default 200")
    synth.add_argument("--frames", type=int, default=48, help="frames per video (default 48)")
    synth.add_argument("--size", default="32x44", help="HxW (default 32x44)")
    synth.add_argument("--seed", type=int, default=0, help="default 0")
    synth.add_argument(
        "--level",
        type=int,
        default=DEFAULT_LEVEL,
        choices=sorted(LEVELS),
        help=f"difficulty (default {DEFAULT_LEVEL}; what each level sets: below)",
    )
    synth.set_defaults(func=run_synth)


# ------------------------------------------------------------------------------------------ check


def run_check(args) -> int:
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be > 0, got {args.timeout}")
    if (args.frames is not None and args.frames < 1) or args.sampling_rate < 1:
        raise ValueError(f"--frames and --sampling-rate must be >= 1, got {args.frames} and {args.sampling_rate}")
    span = clip_span(args.frames, args.sampling_rate) if args.frames else None
    spec = DataSpec(
        format=args.format,
        root=args.root,
        split=args.split,
        video_root=args.video_root,
        annotation_root=args.annotation_root,
        cache=False,
        decoder=args.decoder,
    )
    subsets = ("train", "test") if args.subset == "all" else (args.subset,)
    indexes, absent = {}, {}
    for subset in subsets:
        try:
            indexes[subset] = build_index(spec, subset, allow_missing=True)
        except FileNotFoundError as exc:  # e.g. no test list; a bad line (ValueError) always stops
            if args.subset != "all":
                raise
            absent[subset] = exc
    if not indexes:
        raise next(iter(absent.values()))
    paths = sorted({p for index in indexes.values() for p, _ in index.videos})
    results = scan(paths, workers=args.workers, timeout_s=args.timeout, span=span, decoder=spec.decoder)
    for index in indexes.values():
        results.update({p: why_missing(p) for p in index.missing})

    classes = next(iter(indexes.values())).classes
    print(f"{args.format} at {args.root} (split {args.split}): {len(classes)} classes")
    for subset, exc in absent.items():
        print(f"  {subset:5s}: not found ({exc})")
    for subset, index in indexes.items():
        listed = [p for p, _ in index.videos] + list(index.missing)
        bad = sum(isinstance(results[p], str) for p in listed)
        print(f"  {subset:5s}: {len(listed)} videos listed, {len(listed) - bad} usable, {bad} unusable")
    good = [r for r in results.values() if not isinstance(r, str)]
    if good:
        frames = [r["num_frames"] for r in good]
        fps = [r["fps"] for r in good]
        sizes = sorted({(r["height"], r["width"]) for r in good})
        print(f"  frames per video: min {min(frames)}, median {statistics.median(frames):g}, max {max(frames)}")
        print(f"  fps: {min(fps):g} .. {max(fps):g}")
        shown = ", ".join(f"{h}x{w}" for h, w in sizes[:5]) + (" ..." if len(sizes) > 5 else "")
        print(f"  frame sizes (HxW): {shown}")
    bad = {p: r for p, r in sorted(results.items()) if isinstance(r, str)}
    if bad:
        print(f"{len(bad)} unusable file(s):")
        for p, reason in bad.items():
            print(f"  {p}: {reason}")
    if args.bad_list:
        Path(args.bad_list).write_text("".join(f"{p}\t{r}\n" for p, r in bad.items()))
        print(f"wrote {len(bad)} line(s) to {args.bad_list}")
    return 1 if bad else 0


def why_missing(path: str) -> str:
    """Why a listed file cannot be opened: absent, a broken symlink, a symlink loop, or not a file
    at all (a device, a FIFO, a socket, a folder: what it is)."""
    why = not_a_video_file(path) or "not a video file"
    return "missing: listed in the annotations, not on disk" if why == "not on disk" else why


def scan(
    paths: list[str],
    *,
    workers: int = 2,
    timeout_s: float = 60.0,
    resize: tuple[int, int] | None = None,
    span: int | None = None,
    decoder: str = DEFAULT_DECODER,
) -> dict[str, dict | str]:
    """path → {num_frames, fps, height, width} or the reason it is unusable. `workers` threads each
    drive their own decode child, so `workers` videos decode in parallel and a crash costs one file.
    With `span` (the frames one clip covers) a shorter video is unusable and the last clip is decoded."""
    from trainers.data.decode_process import DecodeProcess
    from trainers.data.video import VideoDecodeError

    local, decoders, lock = threading.local(), [], threading.Lock()

    def check(path: str):
        if not hasattr(local, "decoder"):
            local.decoder = DecodeProcess(timeout_s=timeout_s, decoder=decoder)
            with lock:
                decoders.append(local.decoder)
        try:
            return path, local.decoder.request({"op": "check", "path": path, "resize": resize, "span": span})
        except VideoDecodeError as exc:
            return path, exc.reason

    results: dict[str, dict | str] = {}
    step = max(1, len(paths) // 10)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for done, (path, result) in enumerate(pool.map(check, paths), 1):
                results[path] = result
                if len(paths) >= 200 and done % step == 0:
                    print(f"  checked {done}/{len(paths)}", file=sys.stderr)
    finally:
        for decoder in decoders:
            decoder.close()
    return results


# ------------------------------------------------------------------------------------------ synth


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be HxW like 32x44, got {text!r}") from None
    return height, width


def run_synth(args) -> int:
    from trainers.data.synth import write_synthetic_dataset  # lazy: only this command needs it

    size = parse_size(args.size)
    meta = write_synthetic_dataset(
        args.out,
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        frames=args.frames,
        size=size,
        seed=args.seed,
        level=args.level,
    )
    print(
        f"synthetic dataset in {args.out}: {args.classes} classes x {args.videos_per_class} videos, "
        f"{args.frames} frames of {size[0]}x{size[1]}, level {args.level}"
    )
    if isinstance(meta, dict) and meta.get("classes"):
        names = meta["classes"]
        print(f"  classes: {', '.join(names) if isinstance(names, list) else names}")
    print(f"  use it as: format ucf101, root {args.out}   (check: starch data check ucf101 {args.out})")
    return 0
