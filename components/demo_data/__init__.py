"""The embedded default dataset: coloured shapes with captions that say exactly what is drawn."""

from .config import DemoDataConfig
from .run import write_demo_dataset
from .scenes import caption_accuracy, caption_facts, check_facts

__all__ = ["DemoDataConfig", "caption_accuracy", "caption_facts", "check_facts", "write_demo_dataset"]
