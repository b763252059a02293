"""Several photos in one `run` or `draft`: `--content A.jpg B.png` or `--content FOLDER`.

The models load once (one Engine for the batch); each photo gets its own result in the `--out` folder, named after
the photo. A photo that cannot be read (damaged, not an image, too large) is reported in one line and skipped; the
batch goes on. A summary ends the batch. Exit codes: 0 all done, EXIT_SOME_SKIPPED when some photos were skipped,
2 when none could be done (as a single unreadable photo), 130 on Ctrl-C (what is done stays saved).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from engine.errors import Cancelled, ImageTooLarge, ImageUnreadable, InvalidRequest
from engine.images import IMAGE_SUFFIXES
from engine.wording import count

EXIT_SOME_SKIPPED = 3  # distinct from 2 (nothing done: a bad option or input) and 130 (Ctrl-C)
EXIT_NONE_DONE = 2

# Makes and saves one photo's result (printing its line); False when it was cancelled (a partial result saved).
Restyle = Callable[[Path, Path], bool]


def add_content_arg(parser, required: bool = True) -> None:
    """--content: one photo (as ever), or several photos or a folder (a batch); `required` False where another
    option can stand for it (run --recipe)."""
    parser.add_argument("--content", required=required, nargs="+", type=Path, metavar="PHOTO|FOLDER",
                        help="the photo to restyle; several photos or a folder (its images sorted by name, not its "
                             "subfolders or hidden files) make a batch, and --out is then a folder")


def is_batch(paths: list[Path]) -> bool:
    """Several photos, or a folder of them (even a folder of one: its result goes in the --out folder)."""
    return len(paths) > 1 or paths[0].is_dir()


def content_photos(paths: list[Path]) -> list[Path]:
    """The batch's photos: files as given, each folder's images (non-recursive, by name, hidden files skipped); a
    photo named twice is restyled once. A given file that is missing or not an image stays in, to be reported."""
    photos: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if not p.name.startswith(".")
                           and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise InvalidRequest(f"the folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            photos += found
        else:
            photos.append(path)
    return list(dict.fromkeys(photos))


def batch_outputs(photos: list[Path], out: Path) -> list[Path]:
    """OUT/<photo name>.png per photo; photos of the same name (a.jpg, a.png) get -2, -3, ... in order. Refuses an
    --out that is a file name, or a folder the photos are in (results would overwrite or join them)."""
    if out.suffix.lower() == ".png":
        raise InvalidRequest(f"with several photos --out is a folder for their results, not {out.name}")
    if any(photo.parent.resolve() == out.resolve() for photo in photos):
        raise InvalidRequest(f"--out {out} is the photos' own folder: choose another folder for the results")
    taken: set[str] = set()
    outputs = []
    for photo in photos:
        name, number = photo.stem, 2
        while name.lower() in taken:  # at most len(photos) tries: each try takes a new number
            name, number = f"{photo.stem}-{number}", number + 1
        taken.add(name.lower())
        outputs.append(out / f"{name}.png")
    return outputs


def prepare_batch(args) -> tuple[list[Path], list[Path]]:
    """The photos and their outputs, with the references and the --out folder checked once, before any model loads:
    a bad reference or output would fail every photo."""
    from engine.images import load_image
    from engine.outputs import check_output_folder

    photos = content_photos(args.content)
    outputs = batch_outputs(photos, args.out)
    for reference in args.style:
        load_image(reference)
    check_output_folder(args.out, "--out folder")
    return photos, outputs


def skip_reason(photo: Path, exc: ImageUnreadable) -> str:
    """A few words for the summary: why the photo was skipped."""
    from PIL import UnidentifiedImageError

    if isinstance(exc, ImageTooLarge):
        return "too large"
    if not photo.is_file():
        return "not found"
    if isinstance(exc.__cause__, UnidentifiedImageError):
        return "not an image"
    return "unreadable"


def run_batch(photos: list[Path], outputs: list[Path], restyle: Restyle) -> int:
    """Restyle each photo in order with one line of progress each; skip (and report) the unreadable ones; stop at
    Ctrl-C or a cancel. Prints the summary and returns the exit code."""
    from engine.images import load_image

    done: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    total = len(photos)
    for number, (photo, out) in enumerate(zip(photos, outputs), 1):
        print(f"[{number}/{total}] {photo.name} ...", file=sys.stderr, flush=True)
        try:
            try:
                load_image(photo)  # read before any model works on it: a bad photo costs nothing
            except ImageUnreadable as exc:
                print(f"stylegallery: skipped {photo.name}: {exc}", file=sys.stderr)
                skipped.append((photo, skip_reason(photo, exc)))
                continue
            finished = restyle(photo, out)
        except (Cancelled, KeyboardInterrupt):
            finished = None
        if not finished:
            stopped = f"cancelled at {photo.name}" + (" (partial result saved)" if finished is False else "")
            print(batch_summary(done, skipped, stopped, total - number))
            print("stylegallery: cancelled", file=sys.stderr)
            return 130
        done.append(photo)
    print(batch_summary(done, skipped))
    if not done:
        return EXIT_NONE_DONE
    return EXIT_SOME_SKIPPED if skipped else 0


def batch_summary(done: list[Path], skipped: list[tuple[Path, str]], stopped: str = "", not_started: int = 0) -> str:
    """'4 done, 1 skipped: bad.jpg (not an image)' (and, after a cancel, where it stopped and what was left)."""
    parts = [f"{len(done)} done"]
    if skipped:
        parts.append(f"{len(skipped)} skipped: " + ", ".join(f"{photo.name} ({why})" for photo, why in skipped))
    if stopped:
        parts.append(stopped)
    if not_started:
        parts.append(f"{count(not_started, 'photo')} not started")
    return ", ".join(parts)
