# secreview: the webhook receiver and the Celery workers share this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY workers ./workers
COPY prompts ./prompts
RUN pip install . && useradd --create-home --uid 10001 secreview
USER secreview

EXPOSE 8000
ENTRYPOINT ["secreview"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
