"""The exception tree of secreview; every error carries a ``reason`` used in logs and metrics.

SecreviewError
├── ConfigError             configuration missing or invalid (CLI exit 2)
├── UsageError              bad input from a user (CLI exit 2)
├── DiffError               a diff that cannot be parsed at all
├── InvalidSignature        webhook signature missing or wrong (HTTP 401)
├── GitHubError             GitHub API failure
│   ├── RateLimited         primary or secondary rate limit; carries ``retry_after``
│   └── PublishBlocked      a body for GitHub still held a secret: not sent
└── ModelError              model API failure
    ├── ModelCapacity       3040 out of capacity: retry with backoff
    ├── ModelQuotaExceeded  3036 daily quota used up: stop and report
    ├── ModelTimeout        3007 or a transport timeout: retry
    ├── PayloadTooLarge     3006 / HTTP 413: split and resubmit
    ├── ModelUnavailable    5007 / 3042 unknown model, 5035 plan required: configuration
    ├── InvalidModelOutput  output that fails the findings schema
    └── EgressBlocked       a request still held a secret: not sent, never retried
"""

from __future__ import annotations


class SecreviewError(Exception):
    """Base class; ``reason`` is a short machine-readable slug."""

    reason: str = "error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or self.reason)
        if reason is not None:
            self.reason = reason


class ConfigError(SecreviewError):
    """Configuration is missing or invalid."""

    reason = "config"


class UsageError(SecreviewError):
    """A user gave input the command cannot work with."""

    reason = "usage"


class DiffError(SecreviewError):
    """A diff could not be parsed."""

    reason = "bad_diff"


class InvalidSignature(SecreviewError):
    """A webhook delivery whose signature is missing or does not match."""

    reason = "bad_signature"


class GitHubError(SecreviewError):
    """A GitHub API call failed."""

    reason = "github"

    def __init__(
        self, message: str = "", *, reason: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status


class RateLimited(GitHubError):
    """GitHub asked us to slow down; ``retry_after`` is in seconds."""

    reason = "github_rate_limited"

    def __init__(self, message: str = "", *, retry_after: float, status: int | None = 403) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PublishBlocked(GitHubError):
    """A body for GitHub still held a secret at egress; it was not sent (``kind`` says which)."""

    reason = "egress_blocked"

    def __init__(self, message: str = "", *, kind: str = "") -> None:
        super().__init__(message, status=None)
        self.kind = kind


class ModelError(SecreviewError):
    """A model API call failed; ``code`` is the Workers AI error code when there is one."""

    reason = "model"
    retryable: bool = False
    attempts: int = 1  # HTTP requests this call made (a format discovery may make several)

    def __init__(
        self,
        message: str = "",
        *,
        reason: str | None = None,
        code: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.code = code
        self.status = status


class ModelCapacity(ModelError):
    """Workers AI is out of capacity (3040): retry later with backoff."""

    reason = "model_capacity"
    retryable = True


class ModelQuotaExceeded(ModelError):
    """The account's daily quota is used up (3036): stop and report."""

    reason = "model_quota"


class ModelTimeout(ModelError):
    """The model did not answer in time (3007 or a transport timeout)."""

    reason = "model_timeout"
    retryable = True


class PayloadTooLarge(ModelError):
    """The request is too large (3006 / 413): split it and resubmit."""

    reason = "model_payload_too_large"


class ModelUnavailable(ModelError):
    """The model is unknown or the plan does not include it: a configuration problem."""

    reason = "model_unavailable"


class InvalidModelOutput(ModelError):
    """The model's output failed the findings schema."""

    reason = "invalid_model_output"


class EgressBlocked(ModelError):
    """Requests still held a secret at egress and were not sent (nothing of the batch was).

    ``references`` are the external references of the blocked requests and ``kinds`` the kinds
    of secret found in them (never the values): their units are reported as not reviewed.
    """

    reason = "egress_blocked"
    retryable = False

    def __init__(
        self, message: str = "", *, references: tuple[str, ...] = (), kinds: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.references = references
        self.kinds = kinds
