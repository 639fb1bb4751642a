"""Real and in-memory implementations of the service layer's ports."""
