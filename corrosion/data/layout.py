"""A built data set on disk: its split names and its files, named once for the writer and every reader.

``pipelines.build_dataset`` writes ``{split}-NNNNN-of-MMMMM.tfrecord`` shards, ``label_map.pbtxt``,
``manifest.csv`` (``corrosion.data.manifest``), ``rejects.jsonl`` and ``stats.json``.
"""

from __future__ import annotations

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

# A source's split folder names (Roboflow ``valid``, YOLO ``val``, ...) -> ours.
SPLIT_ALIASES = {
    "train": TRAIN,
    "training": TRAIN,
    "val": VALIDATION,
    "valid": VALIDATION,
    "validation": VALIDATION,
    "test": TEST,
    "testing": TEST,
}

MANIFEST = "manifest.csv"
REJECTS = "rejects.jsonl"
STATS = "stats.json"
LABEL_MAP = "label_map.pbtxt"


def canonical_split(name: str | None) -> str | None:
    """Our split name for a source's split folder (``valid`` -> ``validation``), None if it is not one."""
    if name is None:
        return None
    return SPLIT_ALIASES.get(name.strip().lower())


def shard_pattern(data_dir: str, split: str) -> str:
    """Glob of a split's shards in a data set directory written by pipelines.build_dataset."""
    return f"{data_dir.rstrip('/')}/{split}-*.tfrecord"


def source_folder(source_id: str) -> str:
    """The input folder a record came from: the first part of its ``image/source_id`` (the path
    relative to the folder's parent, e.g. ``ccsc-bridges/images/141.jpg``); "" when it names none."""
    folder, slash, _ = source_id.partition("/")
    return folder if slash else ""
