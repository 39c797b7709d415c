"""Quoting what a user passed in an error message: enough of it to recognise, never megabytes of it (a 5 MB
--name or --model came back whole in the message that refused it)."""

# Characters of a bad value an error message quotes (room for a deep path); longer values are cut there and
# their length is given.
EXCERPT_CHARS = 200


def quoted(value, limit=EXCERPT_CHARS):
    """repr() of str(value), cut to its first `limit` characters with the full length said when longer."""
    text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"
