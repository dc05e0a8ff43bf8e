"""The base model of the StockPipeline API and the rules it shares with the CRD.

A cross-field rule is written once as a method decorated with `@rule(cel=..., message=...)`: the
method body enforces it in Python (`marketpulse run -f`, the operator) and the CEL expression goes
into the CRD's `x-kubernetes-validations` (the API server). Both report the same message, so a user
sees the same words wherever the resource is checked. The two expressions of one rule are kept in
step by tests that run one table of invalid resources through both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

# The API server's own vocabulary for why a rule failed (metav1 field.ErrorType).
Reason = Literal["FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden", "FieldValueDuplicate"]

# pydantic error type used for rule failures, so that formatting can tell them from schema errors.
RULE_ERROR = "stockpipeline_rule"


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry and the Python check that mirrors it."""

    cel: str
    message: str
    field_path: str | None = None
    reason: Reason | None = None
    # A transition rule compares the object with its previous version (`oldSelf` in CEL).
    transition: bool = False

    def to_cel(self) -> dict[str, str]:
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        if self.reason is not None:
            entry["reason"] = self.reason
        return entry

    def error(self) -> PydanticCustomError:
        # The message is used verbatim as a template: keep braces out of rule messages.
        return PydanticCustomError(RULE_ERROR, self.message, {"field_path": self.field_path or ""})


F = TypeVar("F", bound=Callable[..., bool])


def rule(
    *, cel: str, message: str, field_path: str | None = None, reason: Reason | None = None
) -> Callable[[F], F]:
    """Declare a method `(self) -> bool` as a validation rule; it returns True when the object is valid."""

    def mark(method: F) -> F:
        method.__stockpipeline_rule__ = Rule(cel, message, field_path, reason)  # type: ignore[attr-defined]
        return method

    return mark


def transition_rule(
    *, cel: str, message: str, field_path: str | None = None, reason: Reason | None = None
) -> Callable[[F], F]:
    """Declare a method `(self, old) -> bool` as an update rule; CEL sees the old object as `oldSelf`."""

    def mark(method: F) -> F:
        method.__stockpipeline_rule__ = Rule(cel, message, field_path, reason, transition=True)  # type: ignore[attr-defined]
        return method

    return mark


def _cel_rules_into_schema(schema: dict[str, Any], cls: type[Any]) -> None:
    rules = [r.to_cel() for r, _ in getattr(cls, "__stockpipeline_rules__", ())]
    if rules:
        schema["x-kubernetes-validations"] = rules


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields refused as the API server does."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        json_schema_extra=_cel_rules_into_schema,
    )

    __stockpipeline_rules__: ClassVar[tuple[tuple[Rule, Callable[..., bool]], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__stockpipeline_rules__ = tuple(
            (member.__stockpipeline_rule__, member)
            for member in vars(cls).values()
            if callable(member) and hasattr(member, "__stockpipeline_rule__")
        )

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for declared, check in self.__stockpipeline_rules__:
            if not declared.transition and not check(self):
                raise declared.error()
        return self

    def transition_failures(self, old: Self) -> Iterator[tuple[tuple[str | int, ...], Rule]]:
        """Yield (location, rule) for each update rule that refuses the change from `old` to self.

        Like the API server, rules inside nested objects run where both versions have the object.
        """
        for declared, check in self.__stockpipeline_rules__:
            if declared.transition and not check(self, old):
                yield (), declared
        for name, info in type(self).model_fields.items():
            new_value, old_value = getattr(self, name), getattr(old, name)
            if isinstance(new_value, ApiModel) and type(old_value) is type(new_value):
                alias = info.alias or name
                for loc, failed in new_value.transition_failures(old_value):
                    yield (alias, *loc), failed


# Bounded strings everywhere: the API server estimates CEL cost from maxLength/maxItems and
# refuses a CRD whose rules could be too expensive on unbounded input.
def text(max_length: int, *, pattern: str | None = None, min_length: int = 1) -> StringConstraints:
    return StringConstraints(strict=True, min_length=min_length, max_length=max_length, pattern=pattern)


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsSubdomain = Annotated[str, text(253, pattern=DNS_SUBDOMAIN)]
DnsLabel = Annotated[str, text(63, pattern=DNS_LABEL)]
Integer = StrictInt
Number = StrictFloat
Bool = StrictBool


def _rfc3339(value: datetime) -> str:
    # Kubernetes writes timestamps as UTC with a Z suffix and whole seconds; match it byte for byte.
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]


def optional_object(model: type[ApiModel], description: str) -> Any:
    """A nested object that the API server defaults too, to the model's own defaults.

    The default is spelled out rather than `{}`: the API server checks a default against the CEL
    rules without applying the nested defaults first, and `{}` has no `type` for them to read.
    """
    default = model().model_dump(mode="json", by_alias=True, exclude_none=True)
    return Field(default_factory=model, description=description, json_schema_extra={"default": default})


class SecretKeyRef(ApiModel):
    """A key in a Secret in the StockPipeline's namespace."""

    name: DnsSubdomain = Field(description="Name of the Secret.")
    key: Annotated[str, text(253, pattern=r"^[-._a-zA-Z0-9]+$")] = Field(description="Key within the Secret.")


class SecretValue(ApiModel):
    """A sensitive value, read from a Secret by the workload that needs it; never copied."""

    secret_key_ref: SecretKeyRef = Field(description="The Secret and key that hold the value.")
