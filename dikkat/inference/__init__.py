"""The DynamicBatcher and the InferenceService that owns the models."""
