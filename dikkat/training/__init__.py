"""Training of the sorter and of the sentiment head; the retrain job."""
