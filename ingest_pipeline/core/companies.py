"""The company id rule, the one place it is decided.

A company id names folders (`landing/<company_id>/`, `reference/company/<company_id>/`) and is
recorded with every upload, so it must be one harmless path segment: never `.` or `..`, never a
hidden name, nothing a shell or a path would read as anything else. The command line
(`--company`), the upload sensor (a landing path or blob metadata) and the reference lookup all
apply this rule, so that an id accepted by one is accepted by all.
"""

import re

COMPANY_ID_MAX_LENGTH = 100
COMPANY_ID_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.-]{{0,{COMPANY_ID_MAX_LENGTH - 1}}}")
COMPANY_ID_RULE = f"1 to {COMPANY_ID_MAX_LENGTH} letters, digits, '_', '-' or '.', starting with a letter, digit or '_'"


def company_id_problem(company_id: str) -> str | None:
    """Why `company_id` is not a valid company id (one sentence, naming it), or None when it is."""
    if isinstance(company_id, str) and COMPANY_ID_RE.fullmatch(company_id):
        return None
    shown = company_id if not isinstance(company_id, str) or len(company_id) <= 60 else company_id[:57] + "..."
    return f"company id {shown!r} must be {COMPANY_ID_RULE}"


def is_company_id(company_id: str) -> bool:
    """Whether `company_id` follows the company id rule."""
    return company_id_problem(company_id) is None
