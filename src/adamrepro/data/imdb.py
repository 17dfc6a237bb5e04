"""IMDB (the Large Movie Review Dataset, Maas et al. 2011) and its bag-of-words features.

The reviews come as a Hugging Face `datasets.DatasetDict` (train/test; text, label with
0 = negative, 1 = positive), either from the hub (`stanfordnlp/imdb`) or from a local copy:
an `aclImdb/` folder or a tarball of it (`aclImdb*.tar.gz`), in or at `root`.

Features: the counts (or presence, `binary`) of the `vocab_size` most frequent training-set
words, by scikit-learn's CountVectorizer, as sparse rows. They are cached on disk under
`cache_dir`, keyed by the source and every setting that built them.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import TensorData, save_npz_atomic
from .sparse import SparseRows

HUB_NAME = "stanfordnlp/imdb"
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


def _rows_from_files(source: Path) -> list[tuple[str, int, int, str]]:
    """(split, label, review id, text) for every labelled review of a folder or tarball."""
    rows = []
    if source.is_dir():
        for path in source.glob("*/*/*.txt"):
            match = _PATH.search(path.relative_to(source.parent).as_posix())
            if match:
                rows.append((match[1], int(match[2] == "pos"), int(match[3]), path.read_text()))
    else:
        with tarfile.open(source) as archive:
            for member in archive:
                match = _PATH.search(member.name)
                if match and member.isfile():
                    text = archive.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
                    rows.append((match[1], int(match[2] == "pos"), int(match[3]), text))
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def load_imdb_text(root: str | Path, source: str = "auto"):
    """The labelled reviews as a `datasets.DatasetDict` with splits train and test."""
    import datasets

    root = Path(root).expanduser()
    local = find_local(root) if source in ("auto", "local") else None
    if local is not None:
        rows = _rows_from_files(local)
        splits = {}
        for split in ("train", "test"):
            chosen = [r for r in rows if r[0] == split]
            if not chosen:
                raise DataError(f"{local} holds no labelled reviews under {split}/pos or neg")
            splits[split] = datasets.Dataset.from_dict(
                {"text": [r[3] for r in chosen], "label": [r[1] for r in chosen]}
            )
        return datasets.DatasetDict(splits)
    if source in ("auto", "hub"):
        try:
            loaded = datasets.load_dataset(HUB_NAME)
        except Exception as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise DataError(
                f"IMDB not found: no aclImdb/ folder or aclImdb*.tar.gz in {root} or {root}/imdb, "
                f"and the hub's {HUB_NAME} could not be loaded ({reason}); set data.root=DIR "
                "(or ADAMREPRO_DATA) to a folder holding one"
            ) from None
        return datasets.DatasetDict({"train": loaded["train"], "test": loaded["test"]})
    raise DataError(
        f"IMDB not found: no aclImdb/ folder or aclImdb*.tar.gz in {root} or {root}/imdb; "
        "set data.root=DIR (or ADAMREPRO_DATA) to a folder holding one"
    )


def _fingerprint(root: Path, source: str) -> str:
    local = find_local(root) if source in ("auto", "local") else None
    if local is None:
        return f"hub:{HUB_NAME}"
    stat = local.stat()
    parts = [str(local.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
    if local.is_dir():
        parts += [str((local / s / c).stat().st_mtime_ns) for s in ("train", "test")
                  for c in ("pos", "neg")]  # fmt: skip
    return "|".join(parts)


def bag_of_words(texts_train, texts_test, vocab_size: int, binary: bool):
    """Sparse (documents x vocab_size) matrices over the `vocab_size` words most frequent in
    the training set (by total count, whichever `binary`), HTML tags such as <br /> removed."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        max_features=vocab_size, lowercase=True,
        preprocessor=lambda text: _TAGS.sub(" ", text).lower(), dtype=np.float32,
    )  # fmt: skip
    train = vectorizer.fit_transform(texts_train)
    test = vectorizer.transform(texts_test)
    if binary:
        train.data[:], test.data[:] = 1.0, 1.0
    return train, test, vectorizer.get_feature_names_out().tolist()


def _pack(matrix, name: str) -> dict[str, np.ndarray]:
    """A CSR matrix as named arrays for np.savez."""
    return {f"{name}_data": matrix.data, f"{name}_indices": matrix.indices,
            f"{name}_indptr": matrix.indptr, f"{name}_shape": np.asarray(matrix.shape)}  # fmt: skip


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
) -> TensorData:
    """Bag-of-words IMDB as sparse rows, labels 0/1; cached under `cache_dir` when given."""
    if source not in ("auto", "local", "hub"):
        raise DataError(f"data.source must be auto, local or hub, got {source!r}")
    root = Path(root).expanduser()
    settings = {"source": _fingerprint(root, source), "vocab_size": int(vocab_size),
                "binary": bool(binary), "version": FEATURES_VERSION}  # fmt: skip
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cached = Path(cache_dir).expanduser() / f"imdb_bow_{key}.npz" if cache_dir else None
    if cached is not None and cached.is_file():
        stored = np.load(cached, allow_pickle=False)
        train, test = _unpack(stored, "train"), _unpack(stored, "test")
        y_train, y_test = stored["y_train"], stored["y_test"]
    else:
        text = load_imdb_text(root, source)
        train, test, _ = bag_of_words(text["train"]["text"], text["test"]["text"],
                                      int(vocab_size), bool(binary))  # fmt: skip
        y_train = np.asarray(text["train"]["label"], dtype=np.int64)
        y_test = np.asarray(text["test"]["label"], dtype=np.int64)
        if cached is not None:
            save_npz_atomic(cached, y_train=y_train, y_test=y_test, **_pack(train, "train"),
                            **_pack(test, "test"))  # fmt: skip
    return TensorData(
        x_train=SparseRows.from_scipy(train),
        y_train=torch.from_numpy(np.asarray(y_train)),
        x_test=SparseRows.from_scipy(test),
        y_test=torch.from_numpy(np.asarray(y_test)),
        num_classes=2,
    )
