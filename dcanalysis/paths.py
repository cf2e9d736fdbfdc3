"""Where the project's shipped data lives. ``DCANALYSIS_DATA`` overrides it (e.g. on a cluster)."""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("DCANALYSIS_DATA", Path(__file__).resolve().parent.parent / "data"))
RESULTS_DIR = DATA_DIR / "results"
MODELS_DIR = DATA_DIR / "models"
