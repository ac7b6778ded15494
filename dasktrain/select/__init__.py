"""Model selection: many configurations of models and parameters trained and compared."""
