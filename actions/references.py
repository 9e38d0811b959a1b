"""Crime reference numbers: one pattern for the NLU extractor, the actions and the gateway.

The Met writes references as 7 digits, a slash and a 2-digit year (4301234/25);
people type them with spaces, hyphens or dots. Other forces use other formats, so
deployments set the pattern (named groups) and the format that joins the groups.
"""

from __future__ import annotations

import re

DEFAULT_REFERENCE_PATTERN = r"(?<!\d)(?P<number>\d{7})\s*[/\\\-. ]?\s*(?P<year>\d{2})(?!\d)"
DEFAULT_REFERENCE_FORMAT = "{number}/{year}"
EXAMPLE_REFERENCE = "4301234/26"  # fictional, in the default format


def normalise_reference(
    text: str,
    pattern: str = DEFAULT_REFERENCE_PATTERN,
    fmt: str = DEFAULT_REFERENCE_FORMAT,
) -> str | None:
    """The reference in `text`, written the standard way; None if there isn't one."""
    match = re.search(pattern, text)
    return fmt.format(**match.groupdict()) if match else None
