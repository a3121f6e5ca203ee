"""Who is asking, and where each of their permissions reaches: the server-side answer to "may they?".

Every console route asks its Principal before it reads or changes anything, and narrows its SQL to what
`reach(permission)` covers; the tenant is always the principal's own, so an id of another tenant's store
is simply not found, and one of another region's store is refused with a sentence that says who can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from novapos.adapters.http import ApiError
from novapos.roles import PERMISSIONS, Permission, Role, roles_with


@dataclass(frozen=True)
class Assignment:
    role: Role
    region: str | None = None
    store: str | None = None

    def describe(self) -> str:
        where = f" of region {self.region}" if self.region else f" at store {self.store}" if self.store else ""
        return f"{self.role.value.replace('_', ' ')}{where}"


@dataclass(frozen=True)
class Reach:
    """Where one permission reaches: the whole tenant, or some regions (with all their stores) and stores."""
    tenant_wide: bool = False
    regions: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()

    @property
    def anywhere(self) -> bool:
        return self.tenant_wide or bool(self.regions or self.stores)

    def covers_store(self, store: str) -> bool:
        return self.tenant_wide or store in self.stores

    def covers_region(self, region: str) -> bool:
        return self.tenant_wide or region in self.regions

    def store_filter(self) -> list[str] | None:
        """For SQL: None when every store of the tenant is covered, else the stores covered (maybe none)."""
        return None if self.tenant_wide else sorted(self.stores)


@dataclass(frozen=True)
class Principal:
    user_id: int
    login: str
    name: str
    tenant: str
    assignments: tuple[Assignment, ...]
    region_stores: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The stores of each region this user holds a regional role in (as the stores table says now)."""
    csrf: str = ""

    def reach(self, permission: Permission) -> Reach:
        tenant_wide = False
        regions: set[str] = set()
        stores: set[str] = set()
        for assignment in self.assignments:
            if permission not in PERMISSIONS[assignment.role]:
                continue
            if assignment.region is not None:
                regions.add(assignment.region)
                stores.update(self.region_stores.get(assignment.region, ()))
            elif assignment.store is not None:
                stores.add(assignment.store)
            else:
                tenant_wide = True
        return Reach(tenant_wide, frozenset(regions), frozenset(stores))

    def require(self, permission: Permission, *, store: str | None = None, region: str | None = None,
                tenant_wide: bool = False) -> Reach:
        """The permission's reach, or a 403 saying what the user holds and which roles would do: anywhere at
        all, or covering `store`, `region`, or (`tenant_wide`) the whole tenant."""
        reach = self.reach(permission)
        if tenant_wide:
            allowed, where = reach.tenant_wide, f"across tenant {self.tenant}"
        elif store is not None:
            allowed, where = reach.covers_store(store), f"at store {store}"
        elif region is not None:
            allowed, where = reach.covers_region(region), f"in region {region}"
        else:
            allowed, where = reach.anywhere, "anywhere"
        if not allowed:
            raise ApiError(403, self.refusal(permission, where))
        return reach

    def refusal(self, permission: Permission, where: str) -> str:
        held = ", ".join(assignment.describe() for assignment in self.assignments) or "no role"
        roles = " or ".join(role.value.replace("_", " ") for role in roles_with(permission))
        return (f"{self.login} ({held}) may not {permission.value} {where}: that needs {roles} "
                f"with that in their scope")

    def as_json(self) -> dict[str, object]:
        return {"user": self.login, "name": self.name, "tenant": self.tenant, "csrf": self.csrf,
                "roles": [{"role": a.role.value, "region": a.region, "store": a.store} for a in self.assignments],
                "permissions": sorted(p.value for p in Permission if self.reach(p).anywhere)}
