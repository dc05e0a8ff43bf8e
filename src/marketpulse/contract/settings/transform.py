"""transform's environment variables (on top of the common and S3 ones).

Snowflake's connection comes from the `SNOWFLAKE_*` variables the workload renderer sets (and that
dbt's profile reads): account, user, a password or a private key file, database, base schema, and
optionally role, warehouse and an endpoint (host, port, protocol) for a private link or a stand-in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from marketpulse.contract.api import TransformMode, TransformVars
from marketpulse.contract.settings.common import WORKLOAD_CONFIG, CommonSettings, WarehouseSettings, env

# Unquoted identifiers: what dbt-snowflake writes, so the loader and dbt name the same objects.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_REQUIRED_FOR_SNOWFLAKE = {
    "SNOWFLAKE_ACCOUNT": "the account identifier, e.g. myorg-myaccount",
    "SNOWFLAKE_USER": "the user the transform connects as",
}


class TransformSettings(CommonSettings, WarehouseSettings):
    model_config = WORKLOAD_CONFIG

    duckdb_path: Path = Path("warehouse.duckdb")
    # cron: one cycle, then exit (what each CronJob run does); continuous: cycles until stopped.
    transform_mode: TransformMode = "cron"
    transform_interval_seconds: float = Field(30.0, gt=0)
    # Continuous mode: cycles run `dbt run` (models only) and a full `dbt build` (models, data tests,
    # unit tests) when the last one is older than this, and always on the first cycle; 0 builds every
    # cycle. Tests over all of silver and gold cost more than the models' incremental runs.
    transform_build_interval_seconds: float = Field(300.0, ge=0)
    bronze_schema: str = "bronze"
    gold_schema: str = "gold"
    publish_gold: bool = True
    # The spec's transform.vars (JSON, by the API's names), passed to dbt as `--vars`.
    dbt_vars: TransformVars = Field(default_factory=TransformVars)
    # One per full refresh requested (the operator sets the request's time): a cycle whose warehouse
    # has not completed a full refresh for this token yet runs `dbt build --full-refresh`.
    full_refresh_token: str = Field("", max_length=64)

    # dbt's base schema beside which it builds silver and gold (the transform only).
    snowflake_schema: str = Field("PUBLIC", validation_alias=env("SNOWFLAKE_SCHEMA"))

    @model_validator(mode="before")
    @classmethod
    def _missing_snowflake_variables_are_checked_as_empty(cls, data: Any) -> Any:
        # pydantic reports an unset field by its Python name; validating it as an empty value makes
        # the error carry the variable's name (SNOWFLAKE_ACCOUNT), which is what a user sets.
        if not isinstance(data, dict) or data.get("warehouse") != "snowflake":
            return data
        filled = dict(data)
        for name in _REQUIRED_FOR_SNOWFLAKE:
            if name not in filled and name.lower() not in filled:
                filled[name] = ""
        credentials = ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PATH")
        if not any(filled.get(n) or filled.get(n.lower()) for n in credentials):
            filled["SNOWFLAKE_PASSWORD"] = ""
        return filled

    @field_validator("snowflake_account", "snowflake_user")
    @classmethod
    def _required_for_snowflake(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("warehouse") == "snowflake" and not value.strip():
            variable = f"SNOWFLAKE_{(info.field_name or '').removeprefix('snowflake_').upper()}"
            raise ValueError(
                f"not set; MARKETPULSE_WAREHOUSE=snowflake needs {_REQUIRED_FOR_SNOWFLAKE[variable]}"
            )
        return value.strip()

    @field_validator("snowflake_password")
    @classmethod
    def _one_credential_for_snowflake(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        has_password = value is not None and value.get_secret_value() != ""
        if info.data.get("warehouse") == "snowflake" and not (
            has_password or info.data.get("snowflake_private_key_path")
        ):
            raise ValueError(
                "not set; MARKETPULSE_WAREHOUSE=snowflake needs a password in SNOWFLAKE_PASSWORD "
                "or a private key file in SNOWFLAKE_PRIVATE_KEY_PATH"
            )
        return value if has_password else None

    @field_validator("snowflake_private_key_path")
    @classmethod
    def _key_file_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None or not str(value):
            return None
        if info.data.get("warehouse") == "snowflake" and not value.is_file():
            raise ValueError(f"{value} is not a file; expected the PEM private key of the Snowflake user")
        return value

    @field_validator("bronze_schema", "gold_schema", "snowflake_database", "snowflake_schema")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(
                f"{value!r} is not a plain identifier; expected letters, digits and underscores, "
                "not starting with a digit"
            )
        return value

    def snowflake_env(self) -> dict[str, str]:
        """The SNOWFLAKE_* variables dbt's profile reads, from these settings (so both agree)."""
        return {
            "SNOWFLAKE_ACCOUNT": self.snowflake_account,
            "SNOWFLAKE_USER": self.snowflake_user,
            "SNOWFLAKE_DATABASE": self.snowflake_database,
            "SNOWFLAKE_SCHEMA": self.snowflake_schema,
            "SNOWFLAKE_ROLE": self.snowflake_role,
            "SNOWFLAKE_WAREHOUSE": self.snowflake_warehouse,
            "SNOWFLAKE_HOST": self.snowflake_host,
            "SNOWFLAKE_PORT": str(self.snowflake_port),
            "SNOWFLAKE_PROTOCOL": self.snowflake_protocol,
            "SNOWFLAKE_PASSWORD": self.snowflake_password.get_secret_value()
            if self.snowflake_password
            else "",
            "SNOWFLAKE_PRIVATE_KEY_PATH": str(self.snowflake_private_key_path or ""),
            "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": (
                self.snowflake_private_key_passphrase.get_secret_value()
                if self.snowflake_private_key_passphrase
                else ""
            ),
        }

    def snowflake_target(self) -> str:
        """Where the transform connects, for messages (no secret)."""
        where = f"SNOWFLAKE_ACCOUNT={self.snowflake_account}, SNOWFLAKE_USER={self.snowflake_user}"
        if self.snowflake_host:
            where += f", endpoint {self.snowflake_protocol}://{self.snowflake_host}:{self.snowflake_port}"
        return where

    def snowflake_connect_kwargs(self) -> dict[str, Any]:
        """Arguments of `snowflake.connector.connect` for the loader."""
        kwargs: dict[str, Any] = {
            "account": self.snowflake_account,
            "user": self.snowflake_user,
            "database": self.snowflake_database,
            "schema": self.snowflake_schema,
            # Fail a cycle in bounded time; the next cycle (or the CronJob's next run) tries again.
            "login_timeout": 30,
            "network_timeout": 300,
        }
        if self.snowflake_password is not None:
            kwargs["password"] = self.snowflake_password.get_secret_value()
        else:
            kwargs["private_key_file"] = str(self.snowflake_private_key_path)
            if self.snowflake_private_key_passphrase is not None:
                kwargs["private_key_file_pwd"] = self.snowflake_private_key_passphrase.get_secret_value()
        for key, value in (("role", self.snowflake_role), ("warehouse", self.snowflake_warehouse)):
            if value:
                kwargs[key] = value
        if self.snowflake_host:
            kwargs |= {
                "host": self.snowflake_host,
                "port": self.snowflake_port,
                "protocol": self.snowflake_protocol,
            }
        return kwargs
