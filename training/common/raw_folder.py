"""A raw labelled folder read for evaluation exactly as the dataset pipeline reads it: the same
readers, validation and decoding check, every refused file kept with its reason."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from corrosion.core.annotations import LabelledImage
from corrosion.core.labels import LabelConfig
from corrosion.core.rejects import Reject
from corrosion.data import decodable, discovery, validate
from corrosion.data.record import Record

log = logging.getLogger("training.evaluate")


def raw_records(
    root: str,
    labels: LabelConfig,
    rejects: list[Reject],
    ignored: list[str] | None = None,
    exclude: tuple[str, ...] = (),
    usable: Callable[[LabelledImage], bool] = lambda labelled: True,
    unusable: list[LabelledImage] | None = None,
) -> Iterator[tuple[LabelledImage, Record]]:
    """Each labelled image under ``root`` with its validated record, streamed. Refusals go to
    ``rejects``, files that are neither images nor annotations to ``ignored``, images ``usable``
    turns down (nothing to score them against) to ``unusable``; nothing under ``exclude`` is read."""
    result = discovery.scan(root, labels, exclude=exclude)
    rejects.extend(result.rejects)
    for path in result.ignored:
        log.info("ignored (not an image or annotation): %s", path)
    if ignored is not None:
        ignored.extend(result.ignored)
    for labelled in result.images:
        if not usable(labelled):
            if unusable is not None:
                unusable.append(labelled)
            continue
        try:
            yield labelled, decodable.record_from_file(labelled, labels)
        except validate.ValidationError as exc:
            rejects.append(exc.to_reject())
