"""Where the local executor finds the values of `secretKeyRef`s: its own servers, or the environment.

A reference `{name: finnhub, key: api-key}` is read from `MARKETPULSE_SECRET_FINNHUB_API_KEY`
(upper-cased, non-alphanumerics as `_`), so secrets never appear in pipeline files or on the command line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from marketpulse.contract.workloads import SecretRef


class MissingSecretError(LookupError):
    pass


def secret_env_name(ref: SecretRef) -> str:
    return "MARKETPULSE_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", f"{ref.name}_{ref.key}").upper()


class LocalSecrets:
    def __init__(
        self, known: Mapping[tuple[str, str], str], environ: Mapping[str, str] | None = None
    ) -> None:
        self.known = dict(known)
        self.environ = os.environ if environ is None else environ

    def resolve(self, ref: SecretRef, *, needed_by: str) -> str:
        if (ref.name, ref.key) in self.known:
            return self.known[(ref.name, ref.key)]
        name = secret_env_name(ref)
        value = self.environ.get(name)
        if value is None:
            raise MissingSecretError(
                f"{needed_by} needs Secret {ref.name!r} key {ref.key!r}: set the environment variable {name}"
            )
        return value
