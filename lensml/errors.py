"""One small exception type per layer. Messages name the file or config key and the fix."""


class LensmlError(Exception):
    """Base class of every error lensml raises on purpose (bad input, bad config)."""


class DataError(LensmlError):
    """Layer 1: a MaNGA file, source tensor or dataset cache is missing, corrupt or unusable."""


class ConfigError(LensmlError):
    """A config value is impossible or unknown; the message names the key (e.g. ``subhalo.mass_bin``)."""


class SimError(LensmlError):
    """Layers 2-3: a source, lens or instrument setting cannot be simulated."""


class DownloadError(DataError):
    """A download failed; the message names the URL and how to place the file by hand."""
