"""IMDB (the Large Movie Review Dataset, Maas et al. 2011) and its bag-of-words features.

The reviews come as a Hugging Face `datasets.DatasetDict` (train/test; text, label with
0 = negative, 1 = positive), either from the hub (`stanfordnlp/imdb`) or from a local copy:
an `aclImdb/` folder or a tarball of it (`aclImdb*.tar.gz`), in or at `root`.

Features: the counts (or presence, `binary`) of the `vocab_size` most frequent training-set
words, by scikit-learn's CountVectorizer, as sparse rows. They are cached on disk under
`cache_dir`, keyed by the source and every setting that built them.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, one_line
from .base import TensorData, file_md5, load_npz_checked, save_npz_checked
from .sparse import SparseRows

HUB_NAME = "stanfordnlp/imdb"
OFFICIAL_ARCHIVE = "aclImdb_v1.tar.gz"  # as published at ai.stanford.edu/~amaas/data/sentiment
OFFICIAL_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
PER_LABEL = 12_500  # reviews per split and label, ids 0..12499
FEATURES_VERSION = 1  # bump when the feature extraction changes: old caches are not reused
_PATH = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_TAGS = re.compile(r"<[^>]+>")


def find_local(root: Path) -> Path | None:
    """An aclImdb folder or tarball at or in `root`."""
    candidates = [root, root / "aclImdb", root / "imdb" / "aclImdb"]
    for folder in candidates:
        if (folder / "train" / "pos").is_dir() and (folder / "test" / "neg").is_dir():
            return folder
    if root.is_file() and root.name.endswith((".tar.gz", ".tgz")):
        return root
    for folder in (root, root / "imdb"):
        tarballs = sorted(folder.glob("aclImdb*.tar.gz")) if folder.is_dir() else []
        if tarballs:
            return tarballs[0]
    return None


Row = tuple[str, int, int, str]  # (split, label, review id, text)


def _rows_from_files(source: Path) -> list[Row]:
    """(split, label, review id, text) for every labelled review of a folder or tarball,
    sorted. A damaged tarball (truncated, altered, not a tarball) is one DataError line."""
    rows = []
    if source.is_dir():
        for path in source.glob("*/*/*.txt"):
            match = _PATH.search(path.relative_to(source.parent).as_posix())
            if match:
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as error:
                    raise DataError(f"{path} cannot be read ({one_line(error)})") from None
                rows.append((match[1], int(match[2] == "pos"), int(match[3]), text))
    else:
        try:
            rows = _rows_from_tarball(source)
        except (tarfile.TarError, EOFError, OSError, zlib.error, UnicodeDecodeError) as error:
            raise DataError(
                f"{source} is a damaged archive ({one_line(error)}); get a whole copy"
            ) from None
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def _rows_from_tarball(source: Path) -> list[Row]:
    """The reviews of a .tar.gz, read as a stream to its very end: the gzip checksum covers
    every byte, and whatever follows the tar's last member must be its zero padding (tarfile
    takes a damaged header for the end of the archive and would stop there silently)."""
    rows = []
    with gzip.open(source, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            match = _PATH.search(member.name)
            if match and member.isfile():
                text = archive.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
                rows.append((match[1], int(match[2] == "pos"), int(match[3]), text))
        position = stream.tell()
        while chunk := stream.read(1 << 20):  # to the end: gzip checks its CRC there
            if chunk.strip(b"\0"):
                raise tarfile.ReadError(f"the tar stops at byte {position:,} but data follows")
    return rows


def check_reviews(rows: Sequence[tuple[str, int, int]], where: str) -> None:
    """IMDB's exact contents: in train/ and test/, pos/ and neg/ each hold reviews 0..12499
    once; else one DataError line naming what is missing."""
    for split in ("train", "test"):
        for label, folder in ((1, "pos"), (0, "neg")):
            ids = [r[2] for r in rows if r[0] == split and r[1] == label]
            missing = sorted(set(range(PER_LABEL)) - set(ids))
            if len(ids) != PER_LABEL or missing:
                detail = f"; missing ids {_spans(missing)}" if missing else " (some twice)"
                raise DataError(
                    f"{where}: {split}/{folder} holds {len(ids):,} reviews where IMDB has "
                    f"{PER_LABEL:,}{detail}; a partial or damaged copy "
                    "(data.verify=false reads it anyway)"
                )


def _spans(ids: list[int], shown: int = 4) -> str:
    """0-3, 17, 40-45, ... (N in all): runs of consecutive ids, the first few."""
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans[:shown])
    return text + (f", ... ({len(ids):,} in all)" if len(spans) > shown else "")


def _check_official_md5(source: Path) -> None:
    if source.name != OFFICIAL_ARCHIVE:
        return
    found = file_md5(source)
    if found != OFFICIAL_MD5:
        raise DataError(
            f"{source}: md5 {found} is not that of the official {OFFICIAL_ARCHIVE} "
            f"({OFFICIAL_MD5}); a damaged or different file (data.verify=false reads it anyway)"
        )


def _hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the Hugging Face hub cannot be reached (one quick request, no retries), or None."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return None  # offline mode: the datasets cache answers, quietly
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as error:
        return one_line(error)
    return None


def load_imdb_text(root: str | Path, source: str = "auto", verify: bool = True):
    """The labelled reviews as a `datasets.DatasetDict` with splits train and test, checked
    (`verify`: the official archive's md5, and IMDB's exact reviews) before anything uses them."""
    import datasets

    root = Path(root).expanduser()
    local = find_local(root) if source in ("auto", "local") else None
    if local is not None:
        if verify and local.is_file():
            _check_official_md5(local)
        rows = _rows_from_files(local)
        if verify:
            check_reviews(rows, str(local))
        splits = {}
        for split in ("train", "test"):
            chosen = [r for r in rows if r[0] == split]
            if not chosen:
                raise DataError(f"{local} holds no labelled reviews under {split}/pos or neg")
            splits[split] = datasets.Dataset.from_dict(
                {"text": [r[3] for r in chosen], "label": [r[1] for r in chosen]}
            )
        return datasets.DatasetDict(splits)
    looked = f"no aclImdb/ folder or aclImdb*.tar.gz in {root} or {root}/imdb"
    if source in ("auto", "hub"):
        reason = _hub_unreachable()
        if reason is None:
            try:
                loaded = datasets.load_dataset(HUB_NAME)
            except Exception as error:
                reason = one_line(error)
        if reason is not None:
            raise DataError(
                f"IMDB not found: {looked}, and the hub's {HUB_NAME} could not be loaded "
                f"({reason}); set data.root=DIR (or ADAMREPRO_DATA) to a folder holding one"
            )
        text = datasets.DatasetDict({"train": loaded["train"], "test": loaded["test"]})
        if verify:
            for split in ("train", "test"):
                labels = text[split]["label"]
                if len(labels) != 2 * PER_LABEL or sum(labels) != PER_LABEL:
                    raise DataError(
                        f"the hub's {HUB_NAME} {split} split holds {len(labels):,} reviews, "
                        f"{sum(labels):,} positive, where IMDB has {2 * PER_LABEL:,} and "
                        f"{PER_LABEL:,}"
                    )
        return text
    raise DataError(
        f"IMDB not found: {looked}; set data.root=DIR (or ADAMREPRO_DATA) to a folder holding one"
    )


def _fingerprint(root: Path, source: str) -> str:
    local = find_local(root) if source in ("auto", "local") else None
    if local is None:
        return f"hub:{HUB_NAME}"
    stat = local.stat()
    parts = [str(local.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    if local.is_dir():
        parts += [
            str((local / s / c).stat().st_mtime_ns)
            for s in ("train", "test")
            for c in ("pos", "neg")
        ]
    return "|".join(parts)


def bag_of_words(texts_train, texts_test, vocab_size: int, binary: bool):
    """Sparse (documents x vocab_size) matrices over the `vocab_size` words most frequent in
    the training set (by total count, whichever `binary`), HTML tags such as <br /> removed."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        max_features=vocab_size,
        lowercase=True,
        preprocessor=lambda text: _TAGS.sub(" ", text).lower(),
        dtype=np.float32,
    )
    train = vectorizer.fit_transform(texts_train)
    test = vectorizer.transform(texts_test)
    if binary:
        train.data[:], test.data[:] = 1.0, 1.0
    return train, test, vectorizer.get_feature_names_out().tolist()


def _pack(matrix, name: str) -> dict[str, np.ndarray]:
    """A CSR matrix as named arrays for np.savez."""
    return {
        f"{name}_data": matrix.data,
        f"{name}_indices": matrix.indices,
        f"{name}_indptr": matrix.indptr,
        f"{name}_shape": np.asarray(matrix.shape),
    }


def _unpack(stored, name: str):
    """The CSR matrix that `_pack` stored under `name`."""
    import scipy.sparse

    parts = (stored[f"{name}_data"], stored[f"{name}_indices"], stored[f"{name}_indptr"])
    return scipy.sparse.csr_matrix(parts, shape=tuple(stored[f"{name}_shape"]))


def load_imdb(
    root: str | Path,
    source: str = "auto",
    vocab_size: int = 10000,
    binary: bool = True,
    cache_dir: str | Path | None = None,
    verify: bool = True,
) -> TensorData:
    """Bag-of-words IMDB as sparse rows, labels 0/1; cached under `cache_dir` when given. The
    cache is written only from a complete, checked read (`verify` is part of its key) and is
    checked against its checksum whenever it is read."""
    if source not in ("auto", "local", "hub"):
        raise DataError(f"data.source must be auto, local or hub, got {source!r}")
    root = Path(root).expanduser()
    settings = {
        "source": _fingerprint(root, source),
        "vocab_size": int(vocab_size),
        "binary": bool(binary),
        "verified": bool(verify),
        "version": FEATURES_VERSION,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cached = Path(cache_dir).expanduser() / f"imdb_bow_{key}.npz" if cache_dir else None
    stored = load_npz_checked(cached) if cached is not None else None
    if stored is not None:
        train, test = _unpack(stored, "train"), _unpack(stored, "test")
        y_train, y_test = stored["y_train"], stored["y_test"]
    else:
        text = load_imdb_text(root, source, verify)
        train, test, _ = bag_of_words(
            text["train"]["text"], text["test"]["text"], int(vocab_size), bool(binary)
        )
        y_train = np.asarray(text["train"]["label"], dtype=np.int64)
        y_test = np.asarray(text["test"]["label"], dtype=np.int64)
        if cached is not None:
            save_npz_checked(
                cached,
                y_train=y_train,
                y_test=y_test,
                **_pack(train, "train"),
                **_pack(test, "test"),
            )
    local = find_local(root) if source in ("auto", "local") else None
    return TensorData(
        x_train=SparseRows.from_scipy(train),
        y_train=torch.from_numpy(np.asarray(y_train)),
        x_test=SparseRows.from_scipy(test),
        y_test=torch.from_numpy(np.asarray(y_test)),
        num_classes=2,
        description={
            "name": "IMDB",
            "source": str(local) if local else f"hub:{HUB_NAME}",
            "lossless": True,
            "checked": bool(verify),
            "label": f"IMDB, {'binary' if binary else 'counts of'} {vocab_size:,} words",
        },
    )
