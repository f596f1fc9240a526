"""Image datasets, their layouts, the contamination protocol and synthetic demo data.

Every dataset here is an :class:`ImageDataset`: ``dataset[i]`` is only the image tensor
``(3, H, W)``; ids, labels, defect types and masks are separate, for evaluation only
(:func:`labels_of`, :func:`defect_types_of`, :func:`masks_of` also read them through a
:class:`~noisyclean.datasets.Subset`).

Importing this package needs only numpy; Pillow and torch are imported when images are
read, and scikit-image when synthetic data is generated.
"""

from noisyclean.data.base import (
    ANOMALY,
    NORMAL,
    UNKNOWN,
    ImageDataset,
    Sample,
    defect_types_of,
    labels_of,
    masks_of,
)
from noisyclean.data.errors import (
    CorruptImageError,
    DataError,
    EmptyDatasetError,
    LayoutError,
    MaskMismatchError,
)
from noisyclean.data.files import IMAGE_EXTENSIONS
from noisyclean.data.folder import ImageFolder, read_image_list
from noisyclean.data.memory import InMemoryImageDataset
from noisyclean.data.mtd import MagneticTile, find_magnetic_tile_root
from noisyclean.data.mvtec import MVTecAD
from noisyclean.data.noise import NoisySplit, make_noisy_split
from noisyclean.data.piped import PIPED, find_piped_root, piped_classes
from noisyclean.data.realiad import RealIADFUIAD
from noisyclean.data.synthetic import DEFECT_TYPES, TEXTURES, make_texture_dataset
from noisyclean.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

__all__ = [
    "ANOMALY",
    "DEFECT_TYPES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGE_EXTENSIONS",
    "NORMAL",
    "PIPED",
    "TEXTURES",
    "UNKNOWN",
    "CorruptImageError",
    "DataError",
    "EmptyDatasetError",
    "ImageDataset",
    "ImageFolder",
    "ImageTransform",
    "InMemoryImageDataset",
    "LayoutError",
    "MVTecAD",
    "MagneticTile",
    "MaskMismatchError",
    "NoisySplit",
    "RealIADFUIAD",
    "Sample",
    "defect_types_of",
    "find_magnetic_tile_root",
    "find_piped_root",
    "labels_of",
    "make_noisy_split",
    "make_texture_dataset",
    "masks_of",
    "piped_classes",
    "read_image_list",
]
