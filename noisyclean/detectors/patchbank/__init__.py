"""The building blocks of a patch memory bank, for any detector that keeps one.

:class:`~noisyclean.detectors.patchknn.PatchKNN` uses them all; they take and return torch
tensors and know nothing about backbones or datasets, so another patch-level detector can
reuse them:

- :mod:`.search`: exact k nearest neighbours of query patches in the bank (torch, faiss);
- :mod:`.coreset`: a greedy k-center coreset that keeps the bank small;
- :mod:`.outliers`: SoftPatch-style outlier scores of training patches (LOF or k-NN);
- :mod:`.smoothing`: a distance grid upsampled to the image and smoothed into a map.
"""

from noisyclean.detectors.patchbank.coreset import greedy_coreset
from noisyclean.detectors.patchbank.outliers import local_outlier_factor, patch_outlier_scores
from noisyclean.detectors.patchbank.search import faiss_index, knn_faiss, knn_torch
from noisyclean.detectors.patchbank.smoothing import gaussian_kernel1d, upsample_and_smooth

__all__ = [
    "faiss_index",
    "gaussian_kernel1d",
    "greedy_coreset",
    "knn_faiss",
    "knn_torch",
    "local_outlier_factor",
    "patch_outlier_scores",
    "upsample_and_smooth",
]
