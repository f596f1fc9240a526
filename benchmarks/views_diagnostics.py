"""How many training images community removal flags and tail protection protects, and how
many of them are defects, on the benchmark's own splits (issue 13; cited in
benchmarks/notes.md).

Uses the library's own functions at their defaults (`noisyclean.community.communities` on the
mutual view's distances, 128 reference images x 32 patches; `noisyclean.tail` on the
whole-image embeddings, 5th neighbour) with the benchmark's budget detector. Run from the
repository root (about 30 min on 2 shared cores)::

    python benchmarks/views_diagnostics.py benchmarks/views-diagnostics.json
"""
import json
import sys

import numpy as np

from noisyclean import community as co
from noisyclean import mutual as mu
from noisyclean import tail as ta
from noisyclean import whole_image as wi
from noisyclean.benchmark import BUDGET_DETECTOR_KWARGS, select_datasets
from noisyclean.data import labels_of
from noisyclean.plugins import detector_factory
from noisyclean.samples import Subset

out = []
for spec in select_datasets("magnetic-tile,piped"):
    ds = spec.load(spec.image_size)
    det = detector_factory("patchknn", **BUDGET_DETECTOR_KWARGS)()
    for noise in (0.0, 0.1, 0.2, 0.4):
        for seed in (0, 1, 2):
            split = spec.split(ds, noise, seed)
            train = Subset(ds, split.train_indices)
            y = labels_of(train) == 1
            patches = mu.patch_embeddings_of(det, train)
            n = len(train)
            rng = np.random.default_rng(seed)
            refs = np.sort(rng.permutation(n)[: min(128, n)])
            dist = mu.image_distances(patches, refs, 32, seed=seed)
            flagged = co.communities(dist, refs, np.arange(len(refs)))
            emb = wi.embeddings_of(det, train)
            protected = ta.tail_mask(ta.mode_sizes(emb, 5))
            row = dict(dataset=spec.name, noise=noise, seed=seed, n=n, defects=int(y.sum()),
                       flagged=int(flagged.sum()), flagged_defects=int((flagged & y).sum()),
                       protected=int(protected.sum()), protected_defects=int((protected & y).sum()))
            print(row, flush=True)
            out.append(row)
json.dump(out, open(sys.argv[1], 'w'), indent=1)
