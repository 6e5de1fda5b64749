"""One exception root for the whole service, split by what a caller should do next.

Transient errors may succeed on retry (network, a locked store); permanent ones will not
(a mail that is not a mail, a request an API refuses). Only the CLI turns them into exit codes.
"""


class EscalatorError(Exception):
    """Root of every error escalator raises on purpose."""


class TransientError(EscalatorError):
    """Worth retrying later: the outside thing may come back."""


class PermanentError(EscalatorError):
    """Retrying will not help: the input or the configuration is wrong."""


class NotAMail(PermanentError):
    """The bytes cannot be read as an RFC 5322 message."""


class ConfigError(PermanentError):
    """A setting, rules file or holiday file is unusable."""


class StoreUnavailable(TransientError):
    """The durable store cannot take or give data right now."""
