"""mlchaos: chaos experiments for ML model-serving services."""

__version__ = "0.1.0"
