"""Where the project's shipped data lives, in a checkout and in an installed wheel.

``DCANALYSIS_DATA`` overrides it (e.g. on a cluster). In a checkout it is the repository's ``data/``; a wheel
carries the parts the library reads at run time (class lists, the paper's reference data, the lab models) as
``dcanalysis._data``. Downloaded lab datasets are cached beside them in a checkout, else in
``DCANALYSIS_CACHE`` or ``~/.cache/dcanalysis``.
"""
from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT_DATA = Path(__file__).resolve().parent.parent / "data"
_INSTALLED_DATA = Path(__file__).resolve().parent / "_data"


def _data_dir() -> Path:
    if os.environ.get("DCANALYSIS_DATA"):
        return Path(os.environ["DCANALYSIS_DATA"])
    return _CHECKOUT_DATA if (_CHECKOUT_DATA / "datasets").is_dir() else _INSTALLED_DATA


DATA_DIR = _data_dir()
RESULTS_DIR = DATA_DIR / "results"
MODELS_DIR = DATA_DIR / "models"
CACHE_DIR = (DATA_DIR if DATA_DIR == _CHECKOUT_DATA or os.environ.get("DCANALYSIS_DATA")
             else Path(os.environ.get("DCANALYSIS_CACHE", Path.home() / ".cache" / "dcanalysis")))
