"""GitHub: App auth, REST calls, publishing, and the webhook protocol (signatures, routing)."""
