"""Datasets: image folders and zips (NVIDIA's dataset_tool layout), sampling from a teacher."""
from .images import ImageDataset

__all__ = ["ImageDataset"]
