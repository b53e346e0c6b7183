"""Training the shipped demo models from ../shared/data (fixed seeds, progress bars, a few minutes on 2 cores)."""
