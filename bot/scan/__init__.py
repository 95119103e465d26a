"""Full-repository scans: walking a tree or tarball, and planning what to review."""
