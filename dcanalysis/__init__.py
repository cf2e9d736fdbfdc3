"""dcanalysis: conditional diffusion models as classifiers (Li et al., "Your Diffusion Model is Secretly a
Zero-Shot Classifier", ICCV 2023), with the analyses of the paper and beyond."""
from .classifier import ClassificationResult, ClassifierConfig, DiffusionClassifier
from .exceptions import NonFiniteError
from .noise import NoisePlan, make_noise_plan
from .schedules import PAPER_PETS, Schedule, Stage
from .sequential import SequentialTest

__version__ = "0.1.0"
__all__ = ["ClassificationResult", "ClassifierConfig", "DiffusionClassifier", "NonFiniteError", "NoisePlan",
           "make_noise_plan", "PAPER_PETS", "Schedule", "Stage", "SequentialTest"]
