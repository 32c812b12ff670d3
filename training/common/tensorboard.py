"""TensorBoard scalars without the ``tensorboard`` package, shared by both training jobs."""

from __future__ import annotations

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from corrosion.core import io_utils


class TensorBoardScalars(keras.callbacks.Callback):
    """Per-epoch scalars (train/ and validation/ runs, as Keras's TensorBoard callback lays them out).

    Keras's own callback needs the ``tensorboard`` package for ``tf.summary.scalar``; this writes the
    same event files with TensorFlow's core ``tf.summary.write``, so training does not depend on
    TensorBoard and ``tensorboard --logdir MODEL_DIR/logs`` shows them wherever it is installed.
    """

    _METADATA = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )

    def __init__(self, log_dir: str, first_epoch: int = 0) -> None:
        super().__init__()
        self._writers = {
            run: tf.summary.create_file_writer(io_utils.join(log_dir, run)) for run in ("train", "validation")
        }
        self._first_epoch = first_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writers[run].as_default():
                tf.summary.write(
                    f"epoch_{tag}", tf.constant(float(value)), step=self._first_epoch + epoch, metadata=self._METADATA
                )

    def on_train_end(self, logs: dict | None = None) -> None:
        for writer in self._writers.values():
            writer.flush()
