"""Where the videos are: `DataSpec` (what a trial's config says about data) and the index builders
that turn a dataset folder into a `VideoIndex` (list of (path, label), class names).

    DataSpec(format="ucf101", root="/data/ucf101", split=1)  ──build_index(spec, "train")──►
        VideoIndex(videos=[("/data/ucf101/UCF-101/ApplyEyeMakeup/v_…avi", 0), …], classes=[…])

Index building only lists and stats files; it never opens a video (that happens in the loader's
decode processes). A split file that lists videos which are not on disk fails here, at
construction, naming how many are missing and the first few paths — not an hour into training.
Kinetics copies always lack some videos (deleted from YouTube): `missing_videos: skip` trains on
the ones present, warns once, and every epoch record carries the count (`missing_videos`).

Layouts (every format also accepts `video_root` / `annotation_root` overrides):

    ucf101    <root>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi
              <root>/ucfTrainTestlist/{classInd.txt, trainlist0N.txt, testlist0N.txt} (or in <root>)
    hmdb51    <root>/[hmdb51_org/]<class>/<video>.avi   (any depth: found by file name)
              <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt, lines "<video> <0|1|2>"
              (1 = train, 2 = test, 0 = unused)
    kinetics  <root>/annotations/{train,validate,test}.csv or <root>/{train,val}.csv with columns
              label,youtube_id,time_start,time_end,split; videos at
              <root>/<split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4 (the ActivityNet
              crawler's naming; label folders with spaces or underscores, `val` or `validate`)
              subset "test" = the validation set (the test labels are not public).
    folder    <root>/<subset>/<class>/<video> or <root>/<class>/<video> (then a fixed 70/30 split
              by a hash of each file name)
    csv       <root>/<subset>.csv (or <subset><N>.csv, <subset>_split<N>.csv, or root = one CSV
              with an optional `subset` column); rows `path,label`, label = class name or int

An optional `<root>/starch_dataset.json` may declare `{"flip_preserves_label": false}`, for
datasets where a mirror changes the class (the synthetic motion dataset: "moving left").
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import logging
import os
import re
import stat
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from spaces.validation import Bool, Int, Number, Str, from_dict, spec
from trainers.data.clips import SHORT_POLICIES
from trainers.data.video import DEFAULT_DECODER, check_decoder

FORMATS: tuple[str, ...] = ("ucf101", "hmdb51", "kinetics", "folder", "csv")
log = logging.getLogger(__name__)

SUBSETS: tuple[str, ...] = ("train", "test")
MISSING_POLICIES: tuple[str, ...] = ("error", "skip")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
DATASET_META_FILE = "starch_dataset.json"
MIN_CROP = 8

# What each format expects under its root, for error messages (the module doc has the details).
LAYOUTS: dict[str, str] = {
    "ucf101": "ROOT/UCF-101/<Class>/<video>.avi and ROOT/ucfTrainTestlist/{classInd.txt, trainlist0N.txt, "
    "testlist0N.txt} (as UCF101's two archives unpack)",
    "hmdb51": "ROOT/<class>/<video>.avi and ROOT/testTrainMulti_7030_splits/<class>_test_split<N>.txt",
    "kinetics": "ROOT/annotations/{train,validate}.csv (label,youtube_id,time_start,time_end) and "
    "ROOT/{train,val}/<label>/<youtube_id>_<start>_<end>.mp4",
    "folder": "ROOT/[train|test/]<class>/<video>",
    "csv": "ROOT/{train,test}.csv (or ROOT = one CSV) with rows path,label",
}


def layout(fmt: str) -> str:
    return LAYOUTS.get(fmt, "one of the formats " + ", ".join(FORMATS))


# The papers' frame sizes for their crops (Res3D §3: 112 crops of 128×171, 56 of 64×86, 224 of 256×342).
PAPER_RESIZE = {112: (128, 171), 56: (64, 86), 224: (256, 342)}


def auto_resize(crop: int) -> tuple[int, int]:
    """The frame size the papers resize to before cropping `crop` pixels."""
    return PAPER_RESIZE.get(crop, (round(crop * 128 / 112), round(crop * 171 / 112)))


# --------------------------------------------------------------------------------------- DataSpec


@spec
class DataSpec:
    """Everything a trial needs to know about its videos; JSON-serialisable via to_dict/from_dict."""

    # where
    format: Literal[FORMATS]
    root: Str = Field(min_length=1)
    split: Int = Field(1, ge=1)  # ucf101 / hmdb51: 1..3; other formats: used if files exist
    subset: Literal[SUBSETS] = "train"  # the default subset; make_loader may ask for the other one
    video_root: Str | None = Field(None, min_length=1)  # override: where the video files are
    annotation_root: Str | None = Field(None, min_length=1)  # override: where the split / CSV files are
    # which frames
    clip_len: Int = Field(16, ge=1)  # L frames per clip
    sampling_rate: Int = Field(1, ge=1)  # s: take every s-th frame
    crop: Int = Field(112, ge=MIN_CROP)
    # 'auto' = the papers' size for the crop; None = native; else [H, W]
    resize: Literal["auto"] | tuple[Int, Int] | None = "auto"
    eval_clips: Int = Field(10, ge=1)  # clips per video for video@1
    short_video: Literal[SHORT_POLICIES] = "drop"  # videos shorter than a clip: 'drop' (counted) or 'loop'
    # listed but not on disk: 'error' at construction, or 'skip' (counted)
    missing_videos: Literal[MISSING_POLICIES] = "error"
    hflip: Bool | None = None  # None = ask the dataset (starch_dataset.json), default True
    # how
    num_workers: Int = Field(2, ge=0)
    batch_size: Int = Field(16, ge=1)
    sample_timeout_s: Number = Field(30.0, gt=0)  # a decode taking longer is a failed sample
    # decoded-frame cache: 'auto' (small datasets), true, false; 'shards' (trainers.data.shards)
    cache: Literal["auto", "shards"] | Bool = "auto"
    # where cache 'shards' keeps its stores (None = $STARCH_CACHE/shards)
    shard_dir: Str | None = Field(None, min_length=1)
    decoder: Str = DEFAULT_DECODER  # video backend: decord, torchcodec, pyav (trainers.data.video)

    @field_validator("resize", "cache", "hflip", mode="wrap")
    @classmethod
    def _one_message(cls, v, handler, info):
        """One error naming the valid values instead of one per member of the union."""
        try:
            return handler(v)
        except ValueError:
            valid = {
                "resize": "'auto', null (native size) or [H, W] ints",
                "cache": "'auto', true, false or 'shards'",
                "hflip": "true, false or null (ask the dataset)",
            }
            raise ValueError(f"must be {valid[info.field_name]}, got {v!r}") from None

    @field_validator("decoder")
    @classmethod
    def _decoder(cls, v: str) -> str:
        try:
            check_decoder(v)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("decoder ")) from None
        return v

    @model_validator(mode="after")
    def _rules(self) -> "DataSpec":
        if self.format in ("ucf101", "hmdb51") and self.split > 3:
            raise ValueError(f"split: {self.format} has splits 1..3, got {self.split}")
        if isinstance(self.resize, tuple) and min(self.resize) < self.crop:
            raise ValueError(
                f"resize {self.resize} is smaller than crop {self.crop}; "
                "valid values: 'auto', null, or [H, W] with H, W >= crop"
            )
        if self.shard_dir is not None and self.cache != "shards":
            raise ValueError(f"shard_dir is only used with cache: shards, but cache is {self.cache!r}")
        return self

    def resize_hw(self) -> tuple[int, int] | None:
        """The (H, W) frames are decoded at, or None for the native size."""
        return auto_resize(self.crop) if self.resize == "auto" else self.resize

    def to_dict(self) -> dict:
        out = asdict(self)
        if isinstance(self.resize, tuple):
            out["resize"] = list(self.resize)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "DataSpec":
        return from_dict(cls, data)

    def replace(self, **changes) -> "DataSpec":
        return dataclasses.replace(self, **changes)  # validated, errors formatted (spaces.validation.spec)


# ------------------------------------------------------------------------------------- VideoIndex


@dataclasses.dataclass(frozen=True)
class VideoIndex:
    """The labelled videos of one subset. Labels are 0-based ints into `classes`."""

    videos: tuple[tuple[str, int], ...]
    classes: tuple[str, ...]
    format: str = ""
    subset: str = ""
    missing: tuple[str, ...] = ()  # listed in the annotations but not on disk (allow_missing only)
    flip_preserves_label: bool = True  # from starch_dataset.json; False forbids horizontal flips
    root: str = ""

    def __len__(self) -> int:
        return len(self.videos)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class MissingVideosError(FileNotFoundError):
    """Annotations list videos that are not on disk."""


# what a listed path that is not a regular file is (os.stat's file types), so that /dev/zero or a
# named pipe is not called "not on disk"; opening either would block or never end
_SPECIAL_FILES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_video_file(path: str) -> str | None:
    """Why a listed path is not a video file, or None when it is a regular file (symlinks followed):
    not on disk, a broken symlink or a symlink loop, or what it is instead (device, FIFO, socket, folder)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            if exc.errno == errno.ELOOP:
                return "symlink loop: the link points back at itself"
            return f"broken symlink to {os.readlink(path)!r}"
        return "not on disk"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "not a regular file")
    return f"{kind}, not a video file"


def build_index(spec: DataSpec, subset: str | None = None, *, allow_missing: bool = False) -> VideoIndex:
    """List the videos of `subset` (default spec.subset). Raises FileNotFoundError if annotation
    files or listed videos are missing (unless allow_missing, used by `starch data check`), and
    ValueError if nothing usable is found."""
    subset = subset or spec.subset
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {list(SUBSETS)}, got {subset!r}")
    root = Path(spec.root).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"dataset root {str(root)!r} does not exist; format {spec.format} expects {layout(spec.format)}"
        )
    builder = {"ucf101": _ucf101, "hmdb51": _hmdb51, "kinetics": _kinetics, "folder": _folder, "csv": _csv}[spec.format]
    try:
        listed, classes = builder(spec, root, subset)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{exc}; format {spec.format} expects {layout(spec.format)}") from None
    present = [(p, y) for p, y in listed if os.path.isfile(p)]
    missing = tuple(p for p, _ in listed if not os.path.isfile(p))
    if missing and not allow_missing:
        first = "\n  ".join(f"{p} ({not_a_video_file(p)})" for p in missing[:5])
        what = f"{spec.format} {subset} split {spec.split}: {len(missing)} of {len(listed)} listed videos are missing"
        if spec.missing_videos == "error":
            raise MissingVideosError(
                f"{what} (first: {first}); check root/video_root, or set data.missing_videos: skip to train "
                f"on the present ones"
            )
        log.warning("%s and skipped (missing_videos: skip); first: %s", what, missing[0])
    if not present and not allow_missing:
        raise ValueError(f"{spec.format} {subset} split {spec.split} under {str(root)!r}: no usable video found")
    meta_dir = Path(spec.video_root).expanduser() if spec.video_root else root
    return VideoIndex(
        videos=tuple(present),
        classes=tuple(classes),
        format=spec.format,
        subset=subset,
        missing=missing,
        root=str(root),
        flip_preserves_label=_flip_preserves_label(root if root.is_dir() else root.parent, meta_dir),
    )


def _flip_preserves_label(*dirs: Path) -> bool:
    for directory in dirs:
        meta = directory / DATASET_META_FILE
        if meta.is_file():
            try:
                data = json.loads(meta.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{meta}: not valid JSON ({exc})") from None
            return bool(data.get("flip_preserves_label", True))
    return True


def _first_dir(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_dir()), None)


def _first_file(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.is_file()), None)


def _walk_videos(directory: Path) -> list[Path]:
    """Every video file under directory, sorted (one os.walk; follows symlinked folders)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames.sort()
        out.extend(Path(dirpath) / f for f in sorted(filenames) if f.lower().endswith(VIDEO_EXTENSIONS))
    return out


# ----------------------------------------------------------------------------------------- UCF101


def _ucf101(spec: DataSpec, root: Path, subset: str):
    ann_candidates = (
        [Path(spec.annotation_root).expanduser()]
        if spec.annotation_root
        else [root / "ucfTrainTestlist", root / "UCF101TrainTestSplits-RecognitionTask" / "ucfTrainTestlist", root]
    )
    ann = next((d for d in ann_candidates if (d / "classInd.txt").is_file()), None)
    if ann is None:
        raise FileNotFoundError(f"ucf101: classInd.txt not found in {[str(d) for d in ann_candidates]}")
    video_root = (
        Path(spec.video_root).expanduser()
        if spec.video_root
        else _first_dir(root / "UCF-101", root / "UCF101", root / "videos") or root
    )
    class_ids: dict[str, int] = {}
    for line in (ann / "classInd.txt").read_text().split("\n"):
        if line.strip():
            number, name = line.split()
            class_ids[name] = int(number) - 1
    classes = [name for name, _ in sorted(class_ids.items(), key=lambda kv: kv[1])]
    lower_ids = {name.lower(): i for name, i in class_ids.items()}
    list_file = ann / f"{subset}list0{spec.split}.txt"
    if not list_file.is_file():
        raise FileNotFoundError(f"ucf101: split file {list_file} not found")
    listed = []
    for number, line in enumerate(list_file.read_text().split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        rel = parts[0].replace("\\", "/")
        where = f"{list_file}:{number}"
        _check_inside(rel, video_root, where)
        class_name = rel.split("/")[0]
        if len(parts) > 1:  # trainlist: 1-based label, which must be the class folder's
            label = _label_number(parts[1], len(classes), where) - 1
            if classes[label].lower() != class_name.lower():
                raise ValueError(
                    f"{where}: label {parts[1]!r} is {classes[label]!r} in classInd.txt but the video is "
                    f"in folder {class_name!r}"
                )
        elif class_name.lower() in lower_ids:  # testlist: label from the class folder
            label = lower_ids[class_name.lower()]
        else:
            raise ValueError(f"{where}: class folder {class_name!r} is not in classInd.txt")
        listed.append((str(video_root / rel), label))
    return _fix_case(listed, video_root), classes


def _check_inside(rel: str, folder: Path, where: str) -> None:
    """A split list names files below its video folder: an absolute path or one that climbs out
    with `..` is refused (a list from elsewhere, or one written to read other files)."""
    if os.path.isabs(rel) or re.match(r"^[A-Za-z]:", rel) or os.path.normpath(rel).split(os.sep)[0] == "..":
        raise ValueError(
            f"{where}: {rel!r} is outside the video folder {str(folder)!r}; split lists name files relative to it"
        )


def _label_number(text: str, num_classes: int, where: str) -> int:
    """A 1-based class number from a split list, checked against classInd.txt's 1..num_classes."""
    if not re.fullmatch(r"\d+", text) or not 1 <= int(text) <= num_classes:
        raise ValueError(f"{where}: label {text!r} is not a class number of classInd.txt (valid: 1..{num_classes})")
    return int(text)


def _fix_case(listed: list[tuple[str, int]], video_root: Path) -> list[tuple[str, int]]:
    """UCF101's lists spell some names differently from the files (HandStandPushups vs
    HandstandPushups): resolve missing paths case-insensitively, walking the folder only if needed."""
    if all(os.path.isfile(p) for p, _ in listed):
        return listed
    by_lower = {str(p).lower(): str(p) for p in _walk_videos(video_root)}
    return [(p if os.path.isfile(p) else by_lower.get(p.lower(), p), y) for p, y in listed]


# ----------------------------------------------------------------------------------------- HMDB51

_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d)\.txt$")


def _hmdb51(spec: DataSpec, root: Path, subset: str):
    if spec.annotation_root:
        ann = Path(spec.annotation_root).expanduser()
    else:
        ann = _first_dir(root / "testTrainMulti_7030_splits", root / "splits", root / "annotations")
        if ann is None:  # anywhere below root
            hit = next(iter(sorted(root.rglob(f"*_test_split{spec.split}.txt"))), None)
            ann = hit.parent if hit else root
    split_files = sorted(ann.glob(f"*_test_split{spec.split}.txt"))
    if not split_files:
        raise FileNotFoundError(f"hmdb51: no *_test_split{spec.split}.txt files in {ann}")
    classes = sorted(_HMDB_SPLIT.match(f.name)["cls"] for f in split_files)
    wanted = "1" if subset == "train" else "2"
    video_root = Path(spec.video_root).expanduser() if spec.video_root else root
    by_name = {p.name: str(p) for p in _walk_videos(video_root)}
    listed = []
    for f in split_files:
        label = classes.index(_HMDB_SPLIT.match(f.name)["cls"])
        for line in f.read_text().split("\n"):
            parts = line.split()
            if len(parts) >= 2 and parts[1] == wanted:
                if "/" in parts[0] or "\\" in parts[0]:
                    raise ValueError(f"{f}: {parts[0]!r}: HMDB51 split files name videos by file name only")
                default = video_root / classes[label] / parts[0]
                listed.append((by_name.get(parts[0], str(default)), label))
    return listed, classes


# --------------------------------------------------------------------------------------- Kinetics

_KINETICS_CSV = {
    "train": ("train", "kinetics_train", "training"),
    "test": ("validate", "val", "validation", "kinetics_val", "kinetics_validate"),
}
_KINETICS_DIRS = {"train": ("train", "training"), "test": ("validate", "val", "validation")}


def _kinetics_csv(ann_dirs: list[Path], subset: str) -> Path | None:
    for directory in ann_dirs:
        for stem in _KINETICS_CSV[subset]:
            if (directory / f"{stem}.csv").is_file():
                return directory / f"{stem}.csv"
        hits = sorted(
            p
            for p in directory.glob("*.csv")
            if any(k in p.stem.lower() for k in (("train",) if subset == "train" else ("val",)))
        )
        if hits:
            return hits[0]
    return None


def _kinetics(spec: DataSpec, root: Path, subset: str):
    ann_dirs = [Path(spec.annotation_root).expanduser()] if spec.annotation_root else [root / "annotations", root]
    csv_file = _kinetics_csv(ann_dirs, subset)
    if csv_file is None:
        raise FileNotFoundError(
            f"kinetics: no {subset} CSV ({'/'.join(_KINETICS_CSV[subset])}.csv) in {[str(d) for d in ann_dirs]}"
        )
    rows = _read_kinetics_rows(csv_file)
    train_csv = _kinetics_csv(ann_dirs, "train")
    label_rows = _read_kinetics_rows(train_csv) if train_csv is not None else rows
    classes = sorted({r["label"] for r in label_rows} | {r["label"] for r in rows})
    ids = {name: i for i, name in enumerate(classes)}
    base = Path(spec.video_root).expanduser() if spec.video_root else root
    split_dir = _first_dir(*(base / d for d in _KINETICS_DIRS[subset])) or base
    by_stem: dict[str, str] = {}
    for p in _walk_videos(split_dir):
        by_stem.setdefault(p.stem, str(p))
    listed = []
    for r in rows:
        stem = f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}"
        default = split_dir / r["label"] / f"{stem}.mp4"
        listed.append((by_stem.get(stem) or by_stem.get(r["youtube_id"]) or str(default), ids[r["label"]]))
    return listed, classes


def _read_kinetics_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"label", "youtube_id", "time_start", "time_end"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"{path}: expected columns {sorted(need)} (+ split), got {sorted(rows[0])}")
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


# ------------------------------------------------------------------------------------ folder / csv


def _folder(spec: DataSpec, root: Path, subset: str):
    base = Path(spec.video_root).expanduser() if spec.video_root else root
    aliases = ("train", "training") if subset == "train" else ("test", "val", "validate", "validation")
    subset_dir = _first_dir(*(base / a for a in aliases))
    if subset_dir is None and _first_dir(*(base / a for a in ("train", "test", "val", "validate"))):
        raise FileNotFoundError(
            f"folder: {str(base)!r} has subset folders but none for {subset!r} (looked for {', '.join(aliases)})"
        )
    class_root = subset_dir or base
    classes = sorted(d.name for d in class_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    listed = []
    for label, name in enumerate(classes):
        for p in _walk_videos(class_root / name):
            if subset_dir is None and _hash_subset(p.relative_to(base)) != subset:
                continue
            listed.append((str(p), label))
    if not classes:
        raise ValueError(f"folder: no class folders in {str(class_root)!r}")
    return listed, classes


def _hash_subset(relpath: Path) -> str:
    return "test" if zlib.crc32(str(relpath).encode()) % 10 < 3 else "train"


def _csv(spec: DataSpec, root: Path, subset: str):
    aliases = (subset,) if subset == "train" else ("test", "val", "validate")
    if root.is_file():
        csv_files, base = {subset: root}, root.parent
    else:
        ann = Path(spec.annotation_root).expanduser() if spec.annotation_root else root
        base = root
        csv_files = {}
        for sub, names in (("train", ("train",)), ("test", ("test", "val", "validate"))):
            for name in names:
                hit = _first_file(
                    ann / f"{name}_split{spec.split}.csv", ann / f"{name}{spec.split}.csv", ann / f"{name}.csv"
                )
                if hit:
                    csv_files[sub] = hit
                    break
        if subset not in csv_files:
            raise FileNotFoundError(f"csv: no {subset} CSV ({'/'.join(a + '.csv' for a in aliases)}) in {str(ann)!r}")
    video_root = Path(spec.video_root).expanduser() if spec.video_root else None
    tables = {sub: _read_path_label_rows(f) for sub, f in csv_files.items()}
    rows = [r for r in tables[subset] if r[2] in (None, *aliases)]
    all_labels = [r[1] for table in tables.values() for r in table]
    if all(re.fullmatch(r"\d+", y) for y in all_labels):
        classes = [str(i) for i in range(max(int(y) for y in all_labels) + 1)] if all_labels else []
        ids = {c: i for i, c in enumerate(classes)}
        ids.update({y: int(y) for y in all_labels})
    else:
        classes = sorted(set(all_labels))
        ids = {c: i for i, c in enumerate(classes)}
    folder = video_root or (csv_files[subset].parent if root.is_file() else base)
    for p, _, _, number in rows:
        if not os.path.isabs(p):  # absolute paths are how a CSV points at videos elsewhere
            _check_inside(p, folder, f"{csv_files[subset]}:{number}")
    return [(str(folder / p) if not os.path.isabs(p) else p, ids[y]) for p, y, _, _ in rows], classes


def _read_path_label_rows(path: Path) -> list[tuple[str, str, str | None, int]]:
    """(path, label, subset or None, line number) of every row."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    header = [c.strip().lower() for c in rows[0][1]] if rows else []
    if "path" in header and "label" in header:
        ip, il = header.index("path"), header.index("label")
        isub = header.index("subset") if "subset" in header else None
        rows = rows[1:]
    else:
        ip, il, isub = 0, 1, None
    out = []
    for number, r in rows:
        if len(r) <= max(ip, il):
            raise ValueError(f"{path}:{number}: expected `path,label`, got {','.join(r)!r}")
        out.append((r[ip].strip(), r[il].strip(), r[isub].strip() if isub is not None else None, number))
    return out
