"""The batch-inference pipeline's Beam pieces: the typed job (``config``), model handlers (``handlers``), per-element steps (``transforms``) and the graph's composite stages (``steps``)."""
