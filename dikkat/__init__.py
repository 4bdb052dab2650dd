"""Dikkat: transformers in people's hands, through a chat bot."""

__version__ = "0.1.0"
