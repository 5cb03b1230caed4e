"""URLs as people may see them: no credentials.

A URL may carry a secret: `http://user:password@host`, a presigned `?X-Amz-Signature=...`,
a `?token=...`. Every URL slipway prints (a message, `slipway status`, an error) goes through
`shown_url`, so a secret given on the command line or in MLFLOW_TRACKING_URI never lands in
a terminal scrollback, a CI log or a ticket. The URL itself is still used as given.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"
# Query keys whose values are secrets (matched anywhere in the key, case-insensitively).
_SECRET_KEYS = re.compile(r"token|secret|password|passwd|signature|credential|key|auth", re.I)
# The userinfo of anything that looks like scheme://userinfo@host, even when it does not
# parse as a URL (an unparsable URL is echoed back in its own error message).
_USERINFO = re.compile(r"(?<=//)[^/@\s?#]*@")


def shown_url(url: str) -> str:
    """`url` with its userinfo and secret-looking query values replaced by ***."""
    text = _USERINFO.sub(f"{HIDDEN}@", url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.query:
        return text
    query = [
        (k, HIDDEN if _SECRET_KEYS.search(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))
