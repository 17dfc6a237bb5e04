"""Image classification sets stored the way many copies are: a folder, or a .tar.gz of one,
holding `train/<class>/<image>` and `test/<class>/<image>` (PNG or JPEG), decoded with Pillow.

The class folders must be exactly the expected classes (the caller gives their names, in label
order); images of a class are taken in the order of their file names. A damaged archive, a
missing or unknown class folder, or an image that cannot be decoded is one DataError line.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, one_line

SPLITS = ("train", "test")
EXTENSIONS = (".png", ".jpg", ".jpeg")
_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$")
# The IJG luminance quantisation table at quality 50 (JPEG standard, Annex K).
_IJG_LUMINANCE = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ]
)


@dataclass
class ImageSet:
    """Decoded images, uint8 (n, channels, height, width), with labels, per split, and what
    they were stored as."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    formats: list[str]  # "PNG", "JPEG", ...
    jpeg_quality: int | None  # estimated from the quantisation table (IJG scale)

    @property
    def lossless(self) -> bool:
        return all(f == "PNG" for f in self.formats)


def jpeg_quality(table: Sequence[int]) -> int:
    """The IJG quality (1-100) whose scaling of the standard luminance table gives `table`."""
    scale = 100.0 * float(np.sum(table)) / float(_IJG_LUMINANCE.sum())
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return int(round(min(max(quality, 1.0), 100.0)))


def is_image_tree(folder: Path, classes: Sequence[str]) -> bool:
    return all((folder / split).is_dir() for split in SPLITS) and any(
        (folder / "train" / c).is_dir() for c in classes
    )


def _entries(source: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """(split, class folder, file name, bytes) of every image under a folder or in a .tar.gz
    (read as a stream to its very end, so that its gzip checksum covers every byte)."""
    if source.is_dir():
        for split in SPLITS:
            for path in sorted((source / split).glob("*/*")):
                if path.suffix.lower() in EXTENSIONS:
                    yield split, path.parent.name, path.name, path.read_bytes()
        return
    with gzip.open(source, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            match = _MEMBER.search(member.name)
            if match and member.isfile() and Path(match[3]).suffix.lower() in EXTENSIONS:
                yield match[1], match[2], match[3], archive.extractfile(member).read()  # type: ignore[union-attr]
        position = stream.tell()
        while chunk := stream.read(1 << 20):
            if chunk.strip(b"\0"):
                raise tarfile.ReadError(f"the tar stops at byte {position:,} but data follows")


def read_image_tree(
    source: Path, classes: Sequence[str], counts: dict[str, int] | None = None
) -> ImageSet:
    """Decode every image of `source` (a folder or .tar.gz); `counts` (split -> images per
    class), when given, must hold exactly."""
    from PIL import Image, UnidentifiedImageError

    found: dict[str, dict[str, list[tuple[str, bytes]]]] = {s: {} for s in SPLITS}
    try:
        for split, folder, name, content in _entries(source):
            found[split].setdefault(folder, []).append((name, content))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(
            f"{source} is a damaged archive ({one_line(error)}); get a whole copy"
        ) from None
    images, labels, formats, quality = {}, {}, set(), None
    for split in SPLITS:
        unknown = sorted(set(found[split]) - set(classes))
        missing = [c for c in classes if c not in found[split]]
        if unknown or missing:
            raise DataError(
                f"{source}: {split}/ has class folders {', '.join(unknown) or 'as expected'} "
                f"that are not classes, and lacks {', '.join(missing) or 'none'}; the classes are "
                f"{', '.join(classes)}"
            )
        arrays, split_labels = [], []
        for label, name in enumerate(classes):
            files = sorted(found[split][name])
            expected = (counts or {}).get(split)
            if expected is not None and len(files) != expected:
                raise DataError(
                    f"{source}: {split}/{name} holds {len(files):,} images where there must be "
                    f"{expected:,}; a partial or damaged copy (data.verify=false reads it anyway)"
                )
            for file_name, content in files:
                try:
                    with Image.open(io.BytesIO(content)) as image:
                        formats.add(image.format)
                        if image.format == "JPEG" and quality is None and image.quantization:
                            quality = jpeg_quality(image.quantization[0])
                        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
                    raise DataError(
                        f"{source}: {split}/{name}/{file_name} is not a readable image "
                        f"({one_line(error)})"
                    ) from None
                arrays.append(pixels.transpose(2, 0, 1))
                split_labels.append(label)
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise DataError(f"{source}: the {split} images differ in size ({sorted(shapes)[:3]})")
        images[split] = np.stack(arrays)
        labels[split] = np.asarray(split_labels, dtype=np.int64)
    return ImageSet(images, labels, sorted(formats), quality)


def original_order(labels_by_class: np.ndarray, original_labels: np.ndarray) -> np.ndarray:
    """The permutation that puts class-grouped images (class 0's images in order, then class
    1's, ...) back into an original order given by its labels: position i of the result is the
    index, in the grouped array, of the original set's i-th image."""
    classes = int(original_labels.max()) + 1
    start = np.searchsorted(labels_by_class, np.arange(classes))  # first of each class
    if not np.array_equal(
        np.bincount(labels_by_class, minlength=classes),
        np.bincount(original_labels, minlength=classes),
    ):
        raise DataError("the labels file does not count the images of each class as the copy does")
    order = np.empty(len(original_labels), dtype=np.int64)
    for c in range(classes):
        where = np.flatnonzero(original_labels == c)
        order[where] = start[c] + np.arange(len(where))
    return order
