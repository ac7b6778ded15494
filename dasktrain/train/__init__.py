"""Training: the fit loop, its rounds on the workers, the reducer, progress and early stopping."""
