"""Training certified denoisers."""

from denoisers.train.data import PatchSampler, default_training_images, load_image_folder, shared_data_dir
from denoisers.train.trainer import TrainConfig, TrainResult, train, validate, validation_images

__all__ = [
    "PatchSampler",
    "TrainConfig",
    "TrainResult",
    "default_training_images",
    "load_image_folder",
    "shared_data_dir",
    "train",
    "validate",
    "validation_images",
]
