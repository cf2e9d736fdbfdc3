"""The lab's datasets, under the name the lab's scripts and chapter 7's committed GPU page import them by. They live
in ``dcanalysis.evaluation.lab_datasets``, where the command line reads them without importing the lab."""
from ..evaluation.lab_datasets import (CLASSES, LabDataset, labelled_subset, load_lab_dataset,  # noqa: F401
                                       save_labelled_share, sklearn_digits_28, to_model_input)
