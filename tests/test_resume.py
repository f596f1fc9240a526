"""A killed stage 1 resumes from its cache and recomputes only the unfinished sub-models."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
from core_detectors import CountingDetector

from noisyclean import Purifier

TESTS = __file__.rsplit("/", 1)[0]


def _data():
    return np.random.default_rng(0).normal(size=(60, 3))


def test_killed_run_resumes_without_recomputing(tmp_path):
    counter, cache = tmp_path / "fits.txt", tmp_path / "cache"
    np.save(tmp_path / "x.npy", _data())
    script = textwrap.dedent(f"""
        import sys, functools, numpy as np
        sys.path.insert(0, {TESTS!r})
        from core_detectors import CountingDetector
        from noisyclean import Purifier
        x = np.load({str(tmp_path / 'x.npy')!r})
        factory = functools.partial(CountingDetector, {str(counter)!r}, die_on=3)
        Purifier(factory, k=4, cache_dir={str(cache)!r}, progress=False).fit(x)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == 17, killed.stderr  # died inside the third sub-model's fit
    assert len(counter.read_text().splitlines()) == 3
    assert len(list(cache.glob("*/submodel_*.npy"))) == 2  # two rows were saved

    counter.write_text("")
    resumed = Purifier(functools.partial(CountingDetector, str(counter), die_on=3), k=4,
                       cache_dir=cache, progress=False).fit(_data())
    assert len(counter.read_text().splitlines()) == 2  # only sub-models 2 and 3 trained

    counter.write_text("")
    fresh = Purifier(functools.partial(CountingDetector, str(counter)), k=4,
                     progress=False).fit(_data())
    np.testing.assert_array_equal(resumed.scores_, fresh.scores_)
    np.testing.assert_array_equal(resumed.keep_indices_, fresh.keep_indices_)


def test_changed_configuration_or_data_never_reuses_stale_scores(tmp_path):
    counter, cache = tmp_path / "fits.txt", tmp_path / "cache"
    factory = functools.partial(CountingDetector, str(counter))
    x = _data()

    def fits_for(data, **kwargs):
        counter.write_text("")
        Purifier(factory, cache_dir=cache, progress=False, **kwargs).fit(data)
        return len(counter.read_text().splitlines())

    assert fits_for(x) == 3
    assert fits_for(x) == 0                                    # everything cached
    assert fits_for(x, keep=0.5, normalize="zscore") == 0      # recombining trains nothing
    assert fits_for(x, seed=1) == 3                            # another partition
    assert fits_for(x, scoring="out_of_bag") == 3              # other rows
    assert fits_for(x + 1e-3) == 3                             # the data changed


def test_an_edited_image_changes_the_fingerprint(tmp_path):
    from PIL import Image

    from noisyclean.data import ImageFolder
    from noisyclean.samples import fingerprint

    for i in range(3):
        Image.new("L", (16, 16), color=40 * i).save(tmp_path / f"img_{i}.png")
    before = fingerprint(ImageFolder(tmp_path, image_size=16))
    assert fingerprint(ImageFolder(tmp_path, image_size=16)) == before  # unchanged: reused
    assert fingerprint(ImageFolder(tmp_path, image_size=32)) != before  # other preprocessing
    Image.new("L", (16, 16), color=255).save(tmp_path / "img_1.png")
    os.utime(tmp_path / "img_1.png", ns=(1, 1))  # a different modification time, same name
    assert fingerprint(ImageFolder(tmp_path, image_size=16)) != before


def _detector_with_default(alpha_default: float):
    """The same class name and code each time; only the default of ``alpha`` differs."""

    class Shifted:
        fits = 0

        def __init__(self, alpha: float = alpha_default):
            self.alpha = alpha

        def fit(self, dataset):
            type(self).fits += 1
            self.mean_ = np.asarray(dataset, dtype=float).mean(0)
            return self

        def score(self, dataset):
            return np.abs(np.asarray(dataset, dtype=float) - self.mean_).sum(1) * self.alpha

    return Shifted


def test_a_changed_default_does_not_resume_from_rows_scored_under_the_old_one(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 2))
    old, new = _detector_with_default(1.0), _detector_with_default(2.0)
    first = Purifier(old, k=3, cache_dir=tmp_path, progress=False).fit(x)
    assert first.detector_arguments_ == {"alpha": "1.0"}
    again = Purifier(old, k=3, cache_dir=tmp_path, progress=False).fit(x)
    assert old.fits == 3  # the same detector resumed from the cache: no new fits
    np.testing.assert_array_equal(again.scores_, first.scores_)
    changed = Purifier(new, k=3, cache_dir=tmp_path, progress=False).fit(x)
    assert new.fits == 3  # retrained: same name and code, another default
    np.testing.assert_allclose(changed.scores_, 2 * first.scores_)


def test_the_manifest_records_the_detector_defaults(tmp_path):
    from noisyclean.purifier import resolved_arguments

    x = np.random.default_rng(0).normal(size=(20, 2))
    p = Purifier("knn", k=2, progress=False).fit(x)
    assert p.detector_arguments_ == {"n_neighbors": "5"}  # the default, though not given
    loaded = Purifier.load(p.save(tmp_path / "run"))
    assert loaded.detector_arguments_ == p.detector_arguments_
    assert resolved_arguments(lambda: None) is None  # a lambda's arguments are unknowable
