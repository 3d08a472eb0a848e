"""Template helpers for list templates: ``{% load pgbulk_tags %}``."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def pgbulk_hold(reserved: dict[str, Any] | None, pk: Any) -> Any:
    """The active job holding the row ``pk`` (``bulk.reserved|pgbulk_hold:pk``), or None."""
    return (reserved or {}).get(str(pk))
