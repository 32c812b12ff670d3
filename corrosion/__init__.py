"""Corrosion inspection: the library shared by the dataset, training and inference pipelines."""

__version__ = "0.1.0"
