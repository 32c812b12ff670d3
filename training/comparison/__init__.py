"""A candidate model against the one in use, on the same photos (``python -m training.compare``)."""
