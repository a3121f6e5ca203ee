"""Who may do what: the five roles, the permissions each grants, and the scope a role is held at.

Shared by the hub (the console's every request) and the edge (the till's, from the staff list the hub
distributes), so a role means the same thing on both sides. A user holds roles by assignment: a tenant
admin over the whole tenant, a regional admin over one region's stores, a store manager, supervisor or
cashier at one store; a user may hold several (a manager at one store, a cashier at another).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    TENANT_ADMIN = "tenant_admin"
    REGIONAL_ADMIN = "regional_admin"
    STORE_MANAGER = "store_manager"
    SUPERVISOR = "supervisor"
    CASHIER = "cashier"


class Scope(StrEnum):
    """What an assignment of a role names: nothing (the tenant), a region, or a store."""
    TENANT = "tenant"
    REGION = "region"
    STORE = "store"


class Permission(StrEnum):
    CONSOLE = "console.login"
    VIEW_FLEET = "fleet.view"
    VIEW_SALES = "sales.view"
    VIEW_CATALOG = "catalog.view"
    EDIT_CATALOG = "catalog.edit"
    """Products, barcodes, tax classes, the tenant's settings: they are the whole tenant's."""
    SET_PRICES = "prices.set"
    """A price for the tenant, a region or a store: the scope must cover where the price applies."""
    VIEW_STOCK = "stock.view"
    ADJUST_STOCK = "stock.adjust"
    VIEW_DEAD_LETTERS = "dead_letters.view"
    REDRIVE = "dead_letters.redrive"
    VIEW_USERS = "users.view"
    MANAGE_USERS = "users.manage"
    """Create, change and deactivate users, and assign roles the manager's own scope covers."""
    VIEW_AUDIT = "audit.view"
    VERIFY_AUDIT = "audit.verify"
    MANAGE_STORES = "stores.manage"
    VIEW_PAYMENTS = "payments.view"
    """Payment intents, their refunds, the follow-ups (offline approvals declined later) and reconciliation."""
    MANAGE_PAYMENTS = "payments.manage"
    """Capture, void and refund through the provider from the console, the offline card limits, a reconciliation
    run: audited."""
    VIEW_CUSTOMERS = "customers.view"
    """Customer records, their 360 view (points, tier, orders across stores)."""
    MANAGE_CUSTOMERS = "customers.manage"
    """Create and change customer records; points adjustments (audited)."""
    CUSTOMER_PRIVACY = "customers.privacy"
    """Data subject requests: export everything about a customer, erase them (audited)."""
    VIEW_PROMOTIONS = "promotions.view"
    MANAGE_PROMOTIONS = "promotions.manage"
    """Promotions, coupon codes, the loyalty program's rules and tiers: draft, simulate, schedule, end. A promotion
    whose simulated cost passes the tenant's threshold goes live only when a second holder approves it (audited)."""
    MANAGE_GIFT_CARDS = "gift_cards.manage"
    """Issue, top up, block and refund gift cards from the console (audited)."""
    # At the till (the cashier's shift builds on these).
    SELL = "till.sell"
    OVERRIDE = "till.override"
    """Price overrides, voids after tendering began, returns without a receipt, a drawer closed outside tolerance."""
    NO_SALE = "till.no_sale"
    REFUND = "till.refund"
    """Returns and exchanges with a receipt (the refund goes to the original tender or to cash by the policy)."""
    DISCOUNT = "till.discount"
    """Line and order discounts, with a reason."""
    CASH_MOVES = "till.cash_moves"
    """Pay-ins, pay-outs and cash drops from a drawer session, with a reason."""


SCOPE_OF: dict[Role, Scope] = {
    Role.TENANT_ADMIN: Scope.TENANT,
    Role.REGIONAL_ADMIN: Scope.REGION,
    Role.STORE_MANAGER: Scope.STORE,
    Role.SUPERVISOR: Scope.STORE,
    Role.CASHIER: Scope.STORE,
}

_TILL = {Permission.SELL, Permission.OVERRIDE, Permission.NO_SALE, Permission.REFUND, Permission.DISCOUNT,
         Permission.CASH_MOVES}
_SEE = {Permission.CONSOLE, Permission.VIEW_FLEET, Permission.VIEW_SALES, Permission.VIEW_CATALOG,
        Permission.VIEW_STOCK}

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.TENANT_ADMIN: frozenset(Permission) - _TILL,
    Role.REGIONAL_ADMIN: frozenset(_SEE | {
        Permission.SET_PRICES, Permission.ADJUST_STOCK, Permission.VIEW_DEAD_LETTERS, Permission.REDRIVE,
        Permission.VIEW_USERS, Permission.MANAGE_USERS, Permission.VIEW_AUDIT, Permission.VERIFY_AUDIT,
        Permission.VIEW_PAYMENTS, Permission.MANAGE_PAYMENTS, Permission.VIEW_CUSTOMERS, Permission.MANAGE_CUSTOMERS,
        Permission.VIEW_PROMOTIONS, Permission.MANAGE_PROMOTIONS, Permission.MANAGE_GIFT_CARDS}),
    Role.STORE_MANAGER: frozenset(_SEE | _TILL | {
        Permission.ADJUST_STOCK, Permission.VIEW_USERS, Permission.VIEW_AUDIT, Permission.VIEW_PAYMENTS,
        Permission.VIEW_CUSTOMERS, Permission.VIEW_PROMOTIONS}),
    Role.SUPERVISOR: frozenset(_SEE | _TILL),
    Role.CASHIER: frozenset({Permission.SELL}),
}

GRANTABLE: dict[Role, frozenset[Role]] = {
    Role.TENANT_ADMIN: frozenset(Role),
    Role.REGIONAL_ADMIN: frozenset({Role.STORE_MANAGER, Role.SUPERVISOR, Role.CASHIER}),
}
"""The roles a holder of MANAGE_USERS may assign (within their own scope); nobody grants above themselves."""


def roles_with(permission: Permission) -> list[Role]:
    """The roles that grant a permission, highest first: for a refusal that says who can."""
    return [role for role in Role if permission in PERMISSIONS[role]]
