"""What a loader does with an unreadable or odd-sized image: stop (data.on_bad_sample: error,
the default) or leave it out and keep a line saying where and why (skip); a run logs the count
and the lines to MLflow."""
from __future__ import annotations

from gan_core.data import DataError


class BadSamples:
    def __init__(self, skip: bool = False):
        self.skip = skip
        self.skipped: list[str] = []

    def found(self, err: DataError) -> None:
        """Raise err, or (skip) record it and return so that the caller leaves the sample out."""
        if not self.skip:
            raise err from None
        self.skipped.append(str(err))
