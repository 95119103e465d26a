"""The model: Workers AI and OpenAI-compatible clients, their errors, usage and cost."""
