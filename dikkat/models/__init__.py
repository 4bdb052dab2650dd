"""Model definitions shared by inference and training."""
