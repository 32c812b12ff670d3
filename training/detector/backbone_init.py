"""Starting the detector's backbone from an exported classifier, and saying what that classifier saw.

A classifier trained on the same data set learnt from its train split only, so validation and test
stay unseen; one trained elsewhere may have seen them, which would flatter every metric here.
Held-out images (``--hold_out``) that sit in the train split were seen by the classifier with their
image label (rust), though never with boxes.
"""

from __future__ import annotations

import logging
import os

from corrosion.core import io_utils, paths
from corrosion.data import layout
from corrosion.models import serving
from training.detector.config import DetectorConfig
from training.detector.data import dataset_manifest
from training.detector.model import init_backbone_from_classifier

log = logging.getLogger("training.train_detector")


def init_from_classifier(backbone, config: DetectorConfig, data: str, exclude: frozenset[str]) -> dict | None:
    """Copy ``config.init_from_classifier``'s backbone weights; what was copied and from what, or None."""
    folder = config.init_from_classifier
    if not folder:
        return None
    meta = serving.read_metadata(folder)
    copied = init_backbone_from_classifier(backbone, folder, config.model)
    trained_on = meta.extra.get("data")
    same_data = trained_on is not None and same_location(trained_on, data)
    info = {
        "classifier": folder,
        "version": meta.version,
        "layers_copied": copied,
        "classifier_data": trained_on,
        "same_data_set": same_data,
    }
    log.info("backbone: %d layers from classifier %s (%s), trained on %s", copied, meta.version, folder, trained_on)
    if not same_data:
        log.warning(
            "classifier %s was trained on %s, not on %s: its training photos may include this data set's validation "
            "or test photos, which would flatter the detector's metrics. Use a classifier trained on %s",
            meta.version,
            trained_on,
            data,
            data,
        )
    elif exclude and (rows := dataset_manifest(data)):
        seen = {r.sha256 for r in rows if r.sha256 in exclude and r.split == layout.TRAIN}
        info["held_out_images_in_classifier_training"] = len(seen)
        if seen:
            log.warning(
                "%d held-out images are in the train split the classifier learnt from (image label only, no boxes)",
                len(seen),
            )
    return info


def same_location(a: str, b: str) -> bool:
    if io_utils.is_remote(a) or io_utils.is_remote(b):
        return paths.normalise(a) == paths.normalise(b)
    return os.path.realpath(a) == os.path.realpath(b)  # symlinked data dirs are the same data set
