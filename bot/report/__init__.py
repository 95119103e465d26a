"""Reports: JSON, SARIF, Markdown, comment bodies, and what to post on a pull request."""
