"""The data set: finding labelled photos, validating them, de-duplicating, splitting, the TFRecord schema."""
