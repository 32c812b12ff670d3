"""Image decoding (Pillow: validation, orientation, reduced-scale decoding) and the models' TF preprocessing."""
