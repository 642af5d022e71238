"""One model-change hook per cached model: however a row is written, the namespaces it
changes are invalidated after the transaction commits (caching.invalidation).

A cached model declares a ``Tracked`` rule in its app's cache.py (registered from the app's
``ready()``): the row values its namespaces are built from, and how. From there

* ``save()``, ``delete()`` (cascades and ``QuerySet.delete()`` included) and many-to-many
  changes reach the rule through Django's signals; before an update that may move the row
  to other namespaces (a listing changing city), pre_save reads the values it had;
* ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()`` and ``delete()`` go through the
  model's manager (``InvalidatingManager``), which reads the rows they touch. ``update()``
  and ``delete()`` first lock the matching rows (in primary-key order) and then write
  exactly those, so a row that starts to match meanwhile cannot escape its invalidation.

Outside its reach: raw SQL, and writes to an auto-created many-to-many table through its own
manager. Migrations use historical models, which have neither our managers nor our signal
receivers, so ``migrate`` invalidates everything once when it applied anything.
"""

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from caching import layer
from caching.invalidation import MAX_NAMESPACES_PER_COMMIT, invalidate_on_commit
from caching.namespaces import EVERYTHING, Namespace

Row = Mapping[str, Any]
# Primary keys per statement when the rows a write touches are re-addressed by key (well
# under SQLite's limit on bound parameters).
CHUNK = 500
_BEFORE = "_cache_rows_before_save"


@dataclass(frozen=True)
class Tracked:
    """What a change to one row of ``model`` ("app_label.ModelName") invalidates."""

    model: str
    # values() lookups the namespaces are built from: "city", "property__host_id", ...
    fields: tuple[str, ...]
    namespaces: Callable[[Row], Iterable[Namespace]]
    # For a new row, when it changes less than an edit would (a new amenity touches no listing).
    created: Callable[[Row], Iterable[Namespace]] | None = None
    # Many-to-many fields whose changes change the row as cached.
    m2m: tuple[str, ...] = ()
    # Writes of nothing but these fields change nothing cached (a login's last_login).
    ignored: frozenset[str] = field(default_factory=frozenset)
    # Run at the write itself, for an edit (not an insert): entries forgotten by tombstone
    # rather than by generation (the auth context of a user's tokens, caching.auth).
    at_write: Callable[[list[Row]], None] | None = None


class _Rule:
    def __init__(self, tracked: Tracked) -> None:
        self.tracked = tracked
        self.model: type[models.Model] = apps.get_model(tracked.model)
        self.lookups = ("pk", *(name for name in tracked.fields if name != "pk"))
        self.joins = any("__" in name for name in tracked.fields)
        # Fields whose new value may put the row in other namespaces than its old one.
        self.moving: frozenset[str] = frozenset()
        for name in tracked.fields:
            root = name.split("__", 1)[0]
            if root != "pk":
                model_field = self.model._meta.get_field(root)
                self.moving |= {model_field.name, model_field.attname}

    def ignores(self, written: Iterable[str] | None) -> bool:
        return written is not None and set(written) <= self.tracked.ignored

    def row_of(self, instance: models.Model) -> Row | None:
        """The row as the instance holds it (related objects it has loaded are reused)."""
        row = {}
        for lookup in self.lookups:
            value: Any = instance
            try:
                for part in lookup.split("__"):
                    value = None if value is None else getattr(value, part)
            except ObjectDoesNotExist:
                return None
            row[lookup] = value
        return row

    def rows_of(self, instances: Sequence[models.Model], using: str) -> list[Row | None]:
        if self.joins and all(instance.pk is not None for instance in instances):
            return list(self.read(using, [instance.pk for instance in instances]))
        return [self.row_of(instance) for instance in instances]

    def read(self, using: str, pks: Sequence[Any]) -> list[Row]:
        base = self.model._base_manager.using(using)
        return [row for chunk in _chunks(pks) for row in base.filter(pk__in=chunk).values(*self.lookups)]

    def lock(self, queryset: models.QuerySet) -> list[Row]:
        """The rows ``queryset`` matches, locked (never the joined tables) in primary-key order."""
        base = self.model._base_manager.using(queryset.db)
        matching = base.filter(pk__in=queryset.values("pk")).select_for_update(of=("self",))
        return list(matching.order_by("pk").values(*self.lookups))

    def edited(self, rows: list[Row | None]) -> None:
        if self.tracked.at_write is not None:
            self.tracked.at_write([row for row in rows if row is not None])

    def namespaces(self, rows: Iterable[Row | None], *, created: bool = False) -> set[str]:
        build = self.tracked.created if created and self.tracked.created else self.tracked.namespaces
        touched: set[str] = set()
        for row in rows:
            if row is None:  # a related row is gone (a raw fixture load): nothing can be named
                return {EVERYTHING}
            touched.update(build(row))
            if len(touched) > MAX_NAMESPACES_PER_COMMIT:
                return {EVERYTHING}  # the commit would invalidate everything anyway
        return touched


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


class ModelChanges:
    """The rules of the cached models and the signal receivers that apply them."""

    def __init__(self) -> None:
        self._rules: dict[type[models.Model], _Rule] = {}
        self._m2m_fields: dict[type[models.Model], str] = {}

    def track(self, tracked: Tracked) -> None:
        rule = _Rule(tracked)
        model = rule.model
        self._rules[model] = rule
        uid = f"caching.tracking.{model._meta.label_lower}"
        pre_save.connect(self._pre_save, sender=model, dispatch_uid=f"{uid}.pre_save")
        post_save.connect(self._post_save, sender=model, dispatch_uid=f"{uid}.post_save")
        post_delete.connect(self._post_delete, sender=model, dispatch_uid=f"{uid}.post_delete")
        for name in tracked.m2m:
            through = model._meta.get_field(name).remote_field.through
            self._m2m_fields[through] = name
            m2m_changed.connect(self._m2m_changed, sender=through, dispatch_uid=f"{uid}.{name}.m2m_changed")

    def rule_for(self, model: type[models.Model]) -> _Rule | None:
        return self._rules.get(model) if layer.enabled() else None

    def _pre_save(self, sender, instance: models.Model, raw: bool, using: str, update_fields=None, **kwargs) -> None:
        rule = self.rule_for(sender)
        if rule is None or instance._state.adding or rule.ignores(update_fields):
            return
        if update_fields is None or rule.moving.intersection(update_fields):
            instance.__dict__[_BEFORE] = rule.read(using, [instance.pk])

    def _post_save(self, sender, instance: models.Model, created: bool, using: str, update_fields=None, **kwargs):
        before = instance.__dict__.pop(_BEFORE, [])
        rule = self.rule_for(sender)
        if rule is None or rule.ignores(update_fields):
            return
        rows = [rule.row_of(instance), *before]
        if not created:
            rule.edited(rows)
        invalidate_on_commit(rule.namespaces(rows, created=created), using)

    def _post_delete(self, sender, instance: models.Model, using: str, origin=None, **kwargs) -> None:
        rule = self.rule_for(sender)
        if rule is None or (isinstance(origin, InvalidatingQuerySet) and origin.model is sender):
            return  # that delete() read its rows before deleting them
        invalidate_on_commit(rule.namespaces([rule.row_of(instance)]), using)

    def _m2m_changed(self, sender, instance, action: str, reverse: bool, model, pk_set, using: str, **kwargs) -> None:
        if action not in ("post_add", "post_remove", "pre_clear", "post_clear") or pk_set == set():
            return
        if not reverse:
            rule = self.rule_for(type(instance))
            if rule is not None and action != "pre_clear":
                invalidate_on_commit(rule.namespaces([rule.row_of(instance)]), using)
            return
        # From the other side (amenity.properties.add(...)): the tracked rows are in pk_set,
        # or, for a clear, whatever is linked to the instance until the clear runs.
        rule = self.rule_for(model)
        if rule is None or action == "post_clear":
            return
        if action == "pre_clear":
            linked = model._base_manager.using(using).filter(**{self._m2m_fields[sender]: instance.pk})
            pk_set = list(linked.values_list("pk", flat=True))
        invalidate_on_commit(rule.namespaces(rule.read(using, list(pk_set))), using)


def model_changes() -> ModelChanges:
    return apps.get_app_config("caching").model_changes


def track(*rules: Tracked) -> None:
    for tracked in rules:
        model_changes().track(tracked)


class InvalidatingQuerySet(models.QuerySet):
    """The bulk writes of a cached model, invalidating what they change (see the module docstring)."""

    def update(self, **kwargs: Any) -> int:
        rule = model_changes().rule_for(self.model)
        if rule is None or rule.ignores(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            before = rule.lock(self)
            pks = [row["pk"] for row in before]
            updated = sum(
                super(InvalidatingQuerySet, self.filter(pk__in=chunk)).update(**kwargs) for chunk in _chunks(pks)
            )
            after = rule.read(self.db, pks) if rule.moving.intersection(kwargs) else []
            rule.edited(before)
            invalidate_on_commit(rule.namespaces([*before, *after]), self.db)
        return updated

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> tuple[int, dict[str, int]]:
        rule = model_changes().rule_for(self.model)
        if rule is None:
            return super().delete()
        total, per_model = 0, Counter[str]()
        with transaction.atomic(using=self.db):
            rows = rule.lock(self)
            for chunk in _chunks([row["pk"] for row in rows]):
                count, counts = super(InvalidatingQuerySet, self.filter(pk__in=chunk)).delete()
                total += count
                per_model.update(counts)
            invalidate_on_commit(rule.namespaces(rows), self.db)
        return total, dict(per_model)

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def bulk_create(self, objs: Iterable[models.Model], *args: Any, **kwargs: Any) -> list[models.Model]:
        created = super().bulk_create(objs, *args, **kwargs)
        rule = model_changes().rule_for(self.model)
        if rule is None or not created:
            return created
        upsert = kwargs.get("update_conflicts", args[2] if len(args) > 2 else False)
        if upsert or len(created) > MAX_NAMESPACES_PER_COMMIT:
            # An upsert does not say which rows it changed, nor from what; a bulk load this
            # large would name more namespaces than one commit invalidates one by one.
            invalidate_on_commit([EVERYTHING], self.db)
        else:
            invalidate_on_commit(rule.namespaces(rule.rows_of(created, self.db), created=True), self.db)
        return created

    bulk_create.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(self, objs: Iterable[models.Model], fields: Sequence[str], batch_size: int | None = None) -> int:
        rule = model_changes().rule_for(self.model)
        if rule is None or rule.ignores(fields):
            return super().bulk_update(objs, fields, batch_size=batch_size)
        objs = list(objs)
        pks = [obj.pk for obj in objs]
        with transaction.atomic(using=self.db):
            before = rule.read(self.db, pks) if rule.moving.intersection(fields) else []
            updated = super().bulk_update(objs, fields, batch_size=batch_size)
            rows = [*before, *rule.rows_of(objs, self.db)]
            rule.edited(rows)
            invalidate_on_commit(rule.namespaces(rows), self.db)
        return updated

    bulk_update.alters_data = True  # type: ignore[attr-defined]


InvalidatingManager = models.Manager.from_queryset(InvalidatingQuerySet)
