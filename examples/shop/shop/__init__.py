"""A small example shop used to demonstrate secreview."""
