"""secreview: security review of pull requests with a large open model on Workers AI."""

__version__ = "0.1.0"
