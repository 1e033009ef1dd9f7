"""pix2pixHD synthesis: label maps to images with instance-level feature control.

    from ganprior.synthesis import load_pix2pixhd, synthesize_scene, encode_features
    model = load_pix2pixhd("out/train/pix2pixhd")
    encode_features(model, "out/data/scenes")            # once, after training
    image, record = synthesize_scene(model, label, inst, clusters={"car": 3})
"""
from .clusters import Clusters, encode_features, load_clusters
from .model import Pix2PixHDModel, load_pix2pixhd
from .scene import synthesize_scene

__all__ = ["Clusters", "Pix2PixHDModel", "encode_features", "load_clusters", "load_pix2pixhd",
           "synthesize_scene"]
