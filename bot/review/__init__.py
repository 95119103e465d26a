"""The review: planning, the run, the second look, and what decides a verdict."""
