"""What the sort service accepts, for the layers above inference: the alphabet and the length."""

from dikkat.models.sorter import ALPHABET, SEQUENCE_LENGTH

__all__ = ["ALPHABET", "SEQUENCE_LENGTH"]
