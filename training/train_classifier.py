"""Train, evaluate and export the rust classifier: ``python -m training.train_classifier --help``.

The job itself is ``training.classifier.train``; this is its command, as ``corrosion train-classifier`` is.
"""

from __future__ import annotations

import sys

from training.classifier.train import main

if __name__ == "__main__":
    sys.exit(main())
