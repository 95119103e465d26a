"""Celery application, tasks and the orchestration they call."""
