"""Exact parsing of Kubernetes resource quantities (``3``, ``500m``, ``8Gi``, ``1e3``).

The grammar follows ``k8s.io/apimachinery/pkg/api/resource``::

    quantity ::= [+-] number [suffix]
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= Ki | Mi | Gi | Ti | Pi | Ei          (binary SI)
               | n | u | m | k | M | G | T | P | E   (decimal SI)
               | (e | E) [+-] digits                 (decimal exponent, fits in int32)

Values are returned as :class:`decimal.Decimal` so comparisons (caps, positivity) are exact.
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext

__all__ = ["QuantityError", "is_quantity", "parse_quantity"]

_QUANTITY_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_INT32_MAX = 2**31 - 1


class QuantityError(ValueError):
    """Raised for a value that is not a Kubernetes quantity."""


def parse_quantity(value: int | str) -> Decimal:
    """Return the exact numeric value of a quantity (an int, or a string like ``"8Gi"``)."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a quantity")
    m = _QUANTITY_RE.fullmatch(value)
    if m is None:
        raise QuantityError(f"{value!r} is not a quantity")
    number = Decimal(m["number"])
    if m["sign"] == "-":
        number = -number
    suffix = m["suffix"] or ""
    with localcontext() as ctx:
        ctx.prec = 200
        ctx.Emax = MAX_EMAX
        ctx.Emin = MIN_EMIN
        if suffix in _BINARY:
            return number * (Decimal(1024) ** _BINARY[suffix])
        if suffix in _DECIMAL:
            return number.scaleb(_DECIMAL[suffix])
        exponent = int(suffix[1:])
        if abs(exponent) > _INT32_MAX:
            raise QuantityError(f"{value!r} is not a quantity (exponent out of range)")
        return number.scaleb(exponent)


def is_quantity(value: object) -> bool:
    """True when ``value`` parses as a Kubernetes quantity."""
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return False
    return True
