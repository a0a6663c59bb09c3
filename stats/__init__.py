"""Statistics over agentload corpora: describe a workload, compare it with a reference.

Errors: `StatsError` (a corpus or reference that cannot be described or compared as asked);
corpus errors pass through as `corpus.CorpusError`.

The small pure API other packages use (`replay` for its summaries): `percentiles`,
`summary`, `ks`. `describe` and `compare` return the JSON-ready documents of the CLI.
"""

from stats.comparison import compare, comparison
from stats.distributions import ks, percentiles, summary
from stats.errors import StatsError
from stats.profiles import Profile, describe, description, profile
from stats.reference import Reference, resolve

__all__ = [
    "Profile",
    "Reference",
    "StatsError",
    "compare",
    "comparison",
    "describe",
    "description",
    "ks",
    "percentiles",
    "profile",
    "resolve",
    "summary",
]
