"""Discover the accounts of an AWS Organization (KEYHUNT_ACCOUNTS=organization)."""

from __future__ import annotations

from typing import Any


def fetch_active_accounts(organizations: Any) -> dict[str, str | None]:
    """Every ACTIVE account's ID and name, sorted by ID, following pagination; suspended ones
    are left out. The names come with the listing: no extra call per account."""
    accounts: dict[str, str | None] = {}
    for page in organizations.get_paginator("list_accounts").paginate():
        for account in page.get("Accounts", []):
            # `State` replaces the deprecated `Status`; read whichever the API returns.
            state = account.get("State") or account.get("Status")
            if state == "ACTIVE":
                name = account.get("Name")
                accounts[str(account["Id"])] = str(name) if name else None
    return dict(sorted(accounts.items()))
