"""The exported models' contract (serving signatures, metadata), their LiteRT runtime, backbone weights."""
