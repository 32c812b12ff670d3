"""Train, evaluate and export the rust detector: ``python -m training.train_detector --help``.

The job itself is ``training.detector.train``; this is its command, as ``corrosion train-detector`` is.
"""

from __future__ import annotations

import sys

from training.detector.train import main

if __name__ == "__main__":
    sys.exit(main())
