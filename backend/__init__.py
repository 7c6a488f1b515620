"""LabelCast: a Label Studio ML backend that forecasts how many labels a chest X-ray probe needs."""

__version__ = "0.1.0"
