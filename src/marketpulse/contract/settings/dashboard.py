"""The dashboard's environment variables, read once per browser session by the entrypoint."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr

from marketpulse.contract.settings.common import CommonSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class DashboardSettings(CommonSettings):
    warehouse: Literal["duckdb", "snowflake"] = "duckdb"
    bucket: str = Field("", validation_alias=_env("MARKETPULSE_BUCKET"))
    gold_schema: str = "gold"

    dashboard_address: str = "0.0.0.0"
    dashboard_port: int = Field(8501, ge=1, le=65535)
    # The archive rewrites latest/quotes.json about every 2 s.
    dashboard_quotes_refresh_seconds: float = Field(2.0, gt=0)
    # Older than this, the health page raises the stale banner.
    dashboard_stale_after_seconds: float = Field(900.0, gt=0)

    s3_endpoint: str = Field("http://127.0.0.1:7070", validation_alias=_env("S3_ENDPOINT"))
    s3_access_key: str = Field("", validation_alias=_env("S3_ACCESS_KEY"))
    s3_secret_key: SecretStr = Field(SecretStr(""), validation_alias=_env("S3_SECRET_KEY"))
    s3_region: str = Field("us-east-1", validation_alias=_env("S3_REGION"))

    snowflake_account: str = Field("", validation_alias=_env("SNOWFLAKE_ACCOUNT"))
    snowflake_user: str = Field("", validation_alias=_env("SNOWFLAKE_USER"))
    snowflake_password: SecretStr = Field(SecretStr(""), validation_alias=_env("SNOWFLAKE_PASSWORD"))
    # Key-pair authentication (the operator mounts the key file): used when no password is set.
    snowflake_private_key_path: str = Field("", validation_alias=_env("SNOWFLAKE_PRIVATE_KEY_PATH"))
    snowflake_private_key_passphrase: SecretStr = Field(
        SecretStr(""), validation_alias=_env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE")
    )
    snowflake_role: str = Field("", validation_alias=_env("SNOWFLAKE_ROLE"))
    snowflake_warehouse: str = Field("", validation_alias=_env("SNOWFLAKE_WAREHOUSE"))
    snowflake_database: str = Field("MARKETPULSE", validation_alias=_env("SNOWFLAKE_DATABASE"))
    snowflake_host: str = Field("", validation_alias=_env("SNOWFLAKE_HOST"))
    snowflake_port: int = Field(443, validation_alias=_env("SNOWFLAKE_PORT"))
    snowflake_protocol: Literal["http", "https"] = Field("https", validation_alias=_env("SNOWFLAKE_PROTOCOL"))

    @property
    def cache_key(self) -> str:
        """Identifies everything a query's answer depends on, secrets included (as a digest only),
        so that sessions pointed at different buckets or credentials never share cached results."""
        parts = self.model_dump(mode="json")
        parts["s3_secret_key"] = self.s3_secret_key.get_secret_value()
        parts["snowflake_password"] = self.snowflake_password.get_secret_value()
        parts["snowflake_private_key_passphrase"] = self.snowflake_private_key_passphrase.get_secret_value()
        blob = repr(sorted(parts.items())).encode()
        return hashlib.sha256(blob).hexdigest()
