"""Reading settings from the environment, strictly: a value we do not understand stops the start-up.

Used by config/settings.py and config/gunicorn.py (which runs before Django is set up). Every error
names the variable, the value and what would be accepted, so a typo in a deployment (`DEBUG=flase`,
`AIRLOCK_BATCH_SIZE=10k`) is a clear start-up failure instead of a silently different setting.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _raw(name: str) -> str | None:
    """The variable's value with surrounding blanks removed; None when unset or empty (= use the default)."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _refuse(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is not valid: expected {expected}.")


def env_str(name: str, default: str = "") -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise _refuse(name, value, "one of 1/true/yes/on or 0/false/no/off")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _refuse(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _refuse(name, value, f"a whole number of at least {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _refuse(name, value, "a number") from None
    if number != number or number in (float("inf"), float("-inf")):  # nan, inf
        raise _refuse(name, value, "a finite number")
    if minimum is not None and number < minimum:
        raise _refuse(name, value, f"a number of at least {minimum:g}")
    if maximum is not None and number > maximum:
        raise _refuse(name, value, f"a number of at most {maximum:g}")
    return number


def env_list(name: str, default: str = "") -> list[str]:
    """Comma-separated; blanks around items and empty items are dropped."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int_list(name: str, default: str, *, minimum: int | None = None) -> list[int]:
    numbers = []
    for item in env_list(name, default):
        try:
            number = int(item)
        except ValueError:
            raise _refuse(name, env_str(name, default), "comma-separated whole numbers") from None
        if minimum is not None and number < minimum:
            raise _refuse(name, env_str(name, default), f"comma-separated whole numbers of at least {minimum}")
        numbers.append(number)
    return numbers


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() not in choices:
        raise _refuse(name, value, "one of " + ", ".join(choices))
    return value.lower()
