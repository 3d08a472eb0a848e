"""What a bulk delete would also remove, and what protects records from it (counts per model).

Like the admin's delete confirmation, but counted set-based (subqueries, no objects
loaded), so it stays cheap for a selection of 100,000 records. It follows the
``on_delete`` rules of relations pointing at the model: CASCADE (also deleted, followed
a few levels deep), PROTECT / RESTRICT (the records cannot go), SET_NULL / SET_DEFAULT /
SET() (the link is cleared); multi-table parents are deleted with their children.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import CASCADE, DO_NOTHING, PROTECT, RESTRICT, Model, QuerySet
from django.db.models.deletion import get_candidate_relations_to_delete
from django.utils.text import capfirst

#: Records named in the confirmation.
NAMED = 10
#: How many levels of cascades are followed.
DEPTH = 3


@dataclass
class Protection:
    model: str  # verbose name plural of the protecting records
    count: int  # protecting records
    protected: int  # selected records they protect
    examples: list[str]


@dataclass
class DeletionSummary:
    count: int
    names: list[str]
    also_deleted: dict[str, int] = field(default_factory=dict)  # verbose plural -> count
    cleared: dict[str, int] = field(default_factory=dict)  # links set to NULL / default
    protections: list[Protection] = field(default_factory=list)

    @property
    def more(self) -> int:
        return max(self.count - len(self.names), 0)


def summarize(queryset: QuerySet) -> DeletionSummary:
    count = queryset.count()
    names = [str(obj) for obj in queryset[:NAMED]]
    summary = DeletionSummary(count, names)
    for parent, link in queryset.model._meta.parents.items():
        if link is not None:
            add(summary.also_deleted, parent, count)
    walk(summary, queryset, DEPTH, top=True)
    return summary


def plural(model: type[Model]) -> str:
    return str(capfirst(model._meta.verbose_name_plural))


def add(counts: dict[str, int], model: type[Model], count: int) -> None:
    counts[plural(model)] = counts.get(plural(model), 0) + count


def deleted_with(queryset: QuerySet) -> set[type[Model]]:
    """The other models a delete of ``queryset`` removes records of: its multi-table
    ancestors, and every CASCADE at any depth that has records (and their ancestors), as
    Django's delete goes. One EXISTS per relation; each model is followed once."""
    found: set[type[Model]] = set()
    todo = [queryset]
    seen = {queryset.model}
    for ancestor in queryset.model._meta.get_parent_list():  # their rows go, and cascade
        todo.append(ancestor._base_manager.filter(pk__in=queryset.values("pk")))
        seen.add(ancestor)
        found.add(ancestor)
    while todo:
        current = todo.pop()
        relation: Any
        for relation in get_candidate_relations_to_delete(current.model._meta):
            model = relation.related_model
            if relation.field.remote_field.on_delete is not CASCADE or model in seen:
                continue
            related = model._base_manager.filter(**{f"{relation.field.name}__in": current})
            if related.exists():
                seen.add(model)
                found.update([model, *model._meta.get_parent_list()])
                todo.append(related)
    return found - {queryset.model}


def not_deletable_by(user: Any, queryset: QuerySet) -> list[str]:
    """The kinds of records a delete of ``queryset`` also removes that ``user`` may not
    delete (as the admin's delete refuses them), by verbose name plural."""
    return sorted(plural(model) for model in deleted_with(queryset)
                  if not model._meta.auto_created  # many-to-many links: no permissions
                  and not user.has_perm(f"{model._meta.app_label}.delete_{model._meta.model_name}"))


def walk(summary: DeletionSummary, queryset: QuerySet, depth: int, top: bool = False) -> None:
    relation: Any
    for relation in get_candidate_relations_to_delete(queryset.model._meta):
        on_delete = relation.field.remote_field.on_delete
        if on_delete is DO_NOTHING:
            continue
        related = relation.related_model._base_manager.filter(
            **{f"{relation.field.name}__in": queryset})
        count = related.count()
        if not count:
            continue
        if on_delete is CASCADE:
            add(summary.also_deleted, relation.related_model, count)
            if depth > 1:
                walk(summary, related, depth - 1)
        elif on_delete in (PROTECT, RESTRICT):
            protect(summary, queryset if top else None, relation, related, count)
        else:
            add(summary.cleared, relation.related_model, count)


def protect(summary: DeletionSummary, selection: QuerySet | None, relation: Any,
            related: QuerySet, count: int) -> None:
    protected = 0
    if selection is not None:
        target = relation.field.target_field.attname
        protected = selection.filter(
            **{f"{target}__in": related.values(relation.field.attname)}).count()
    examples = [str(obj) for obj in related[:3]]
    summary.protections.append(Protection(plural(relation.related_model), count, protected,
                                          examples))
