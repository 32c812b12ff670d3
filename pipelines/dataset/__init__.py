"""The dataset pipeline's Beam pieces: per-element steps (``transforms``) and the graph's composite stages (``steps``)."""
