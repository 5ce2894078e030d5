"""Discover the accounts of an AWS Organization (KEYHUNT_ACCOUNTS=organization)."""

from __future__ import annotations

from typing import Any


def fetch_active_accounts(organizations: Any) -> list[str]:
    """IDs of every ACTIVE account, following pagination; suspended ones are left out."""
    accounts: list[str] = []
    for page in organizations.get_paginator("list_accounts").paginate():
        for account in page.get("Accounts", []):
            # `State` replaces the deprecated `Status`; read whichever the API returns.
            state = account.get("State") or account.get("Status")
            if state == "ACTIVE":
                accounts.append(str(account["Id"]))
    return sorted(accounts)
