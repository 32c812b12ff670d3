"""Which epoch the detector keeps: COCO AP50 on validation, on the EMA-averaged weights when on."""

from __future__ import annotations

import logging

import keras

from training.detector.evaluate import evaluate_split

log = logging.getLogger("training.train_detector")


class ValidationAP(keras.callbacks.Callback):
    """COCOeval on validation every few epochs (and the last); keeps the best weights by AP50."""

    def __init__(self, detect, examples, every: int, total_epochs: int) -> None:
        super().__init__()
        self.detect, self.examples, self.every, self.total_epochs = detect, examples, every, total_epochs
        self.best_ap50 = -1.0
        self.best_epoch = 0
        self.best_weights: list | None = None  # (variable, value) pairs: immune to trainable-flag reordering
        self.history: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.total_epochs:
            return
        metrics, _ = evaluate_split(self.detect, self.examples)
        ap50 = metrics["AP50"] if metrics["AP50"] is not None else -1.0
        self.history.append({"epoch": epoch + 1, "AP50": metrics["AP50"], "AP": metrics["AP"]})
        if logs is not None and metrics["AP50"] is not None:
            logs["val_AP50"], logs["val_AP"] = metrics["AP50"], metrics["AP"]
        log.info("epoch %d: validation AP50 %.3f, AP %.3f", epoch + 1, ap50, metrics["AP"] or 0.0)
        if ap50 > self.best_ap50:
            self.best_ap50, self.best_epoch = ap50, epoch + 1
            self.best_weights = [(v, v.numpy()) for v in self.model.variables]

    def restore_best(self) -> None:
        for variable, value in self.best_weights or ():
            variable.assign(value)


def ema_swap(momentum: float | None) -> list[keras.callbacks.Callback]:
    """Callbacks to put before the validation selector so that it evaluates and keeps the averaged
    weights (fit then ends on them too). A fresh one per phase: its state belongs to one optimizer."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if momentum is not None else []
