"""Train, evaluate and export the rust-region model: ``python -m training.train_segmenter --help``.

The job itself is ``training.segmenter.train``; this is its command, as ``corrosion train-segmenter`` is.
"""

from __future__ import annotations

import sys

from training.segmenter.train import main

if __name__ == "__main__":
    sys.exit(main())
