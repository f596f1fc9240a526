"""An anomalib ``Engine`` configured for use inside a library call.

A sub-model of stage 1 is trained, scored and thrown away, so everything an ``Engine`` does
for a person at a terminal is waste or harm here: checkpoints and logs pile up in the
working directory (k of them per purification), progress bars interleave, and the run
folder survives the process. :func:`library_engine` gives an ``Engine`` that keeps nothing:
``barebones=True`` (no checkpoint callback, no progress bar, no summary), no logger, and a
``default_root_dir`` inside a temporary directory that is removed when the block ends, even
on error. (``enable_checkpointing=False`` is not used: anomalib 2.7 crashes with it.)
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Lightning's chatter about a deliberately minimal setup, which says nothing useful here.
_EXPECTED_WARNINGS = (
    r".*val_dataloader.*",
    r".*configure_optimizers.*returned `None`.*",
    r".*module\(s\) in eval mode.*",
    r".*does not have many workers.*",
    r".*LeafSpec.*",
    r".*barebones.*",
)
_CHATTY_LOGGERS = (
    "lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning", "anomalib",
)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info logs and expected warnings inside the block only."""
    previous = {}
    for name in _CHATTY_LOGGERS:
        log = logging.getLogger(name)
        previous[name] = log.level
        log.setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            for pattern in _EXPECTED_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def library_engine(
    *,
    max_epochs: int | None = None,
    accelerator: str = "auto",
    tmp_root: str | Path | None = None,
    **trainer_kwargs: Any,
) -> Iterator[Any]:
    """Yield an ``Engine`` whose run folder exists only inside the ``with`` block.

    ``max_epochs`` applies to models that train (Stfpm, ReverseDistillation, Dinomaly);
    one-pass models (Padim, Patchcore) override it with their own ``max_epochs=1``.
    ``tmp_root`` is where the temporary folder is made (the system default when ``None``).
    Other keyword arguments go to Lightning's ``Trainer``.
    """
    from anomalib.engine import Engine

    args: dict[str, Any] = {"accelerator": accelerator, "devices": 1}
    if max_epochs is not None:
        args["max_epochs"] = int(max_epochs)
    args.update(trainer_kwargs)
    for forbidden in ("default_root_dir", "logger", "barebones"):
        if forbidden in args:
            raise ValueError(
                f"{forbidden} is set by the library engine (temporary folder, no logger, "
                "barebones); remove it from the trainer arguments."
            )
    with tempfile.TemporaryDirectory(prefix="noisyclean-anomalib-", dir=tmp_root) as root:
        with quiet_lightning():
            yield Engine(default_root_dir=root, logger=False, barebones=True, **args)
