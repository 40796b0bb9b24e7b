"""The PrefLib data sets bundled with the package (``ualign_jax/bundled/``, cited in its
``README.md``), loaded by name with :func:`load_dataset`.
"""

from __future__ import annotations

import dataclasses
from importlib import resources

from ._validation import float_dtype_arg
from .populations import RankingPopulation
from .preflib import parse_preflib

__all__ = ["DATASETS", "load_dataset"]

#: Bundled PrefLib files (in ``ualign_jax/bundled/``) by data set name.
DATASETS: dict[str, str] = {
    "sushi": "00014-00000001.soc",
    "netflix": "00004-00000001.soc",
    "agh": "00009-00000001.soc",
    "debian": "00002-00000001.toc",
}

#: Corrected alternative names for bundled files whose header names are off by one. PrefLib's
#: sushi file names alternative ``i`` after Kamishima's item ``i - 1``, but its orders use item
#: ``i mod 10`` (alternative 10 is item 0, ebi): with these names the 5000 orders equal, as a
#: multiset, BayesMallows' ``sushi_rankings`` (labelled by item), where toro is the favourite.
#: Provenance: ``ualign_jax/bundled/README.md``.
_CORRECTED_NAMES: dict[str, tuple[str, ...]] = {
    "sushi": (
        "anago (sea eel)",
        "maguro (tuna)",
        "ika (squid)",
        "uni (sea urchin)",
        "sake (salmon roe)",
        "tamago (egg)",
        "toro (fatty tuna)",
        "tekka-maki (tuna roll)",
        "kappa-maki (cucumber roll)",
        "ebi (shrimp)",
    ),
}


def load_dataset(name: str = "sushi", dtype=None) -> RankingPopulation:
    """Load a PrefLib data set bundled with the package (see ``DATASETS``).

    ``"sushi"`` (5000 voters, 10 sushi, 4926 distinct orders), ``"netflix"`` (3 films, 6 orders),
    ``"agh"`` (9 courses, 123 orders), ``"debian"`` (4 candidates, 31 orders with ties).

    The raw files are unmodified; the sushi names are corrected here: PrefLib's header names
    alternative ``i`` after Kamishima's item ``i - 1``, but its data use item ``i mod 10``
    (checked against an independent copy of the survey; ``ualign_jax/bundled/README.md``).
    So response 0 is anago and response 9 is ebi; ``load_preflib`` on the file keeps the header.

    Args:
        name: one of ``DATASETS``.
        dtype: float dtype; default jnp's default float.

    Example:
        >>> load_dataset("netflix").num_users
        6
        >>> load_dataset("sushi").names[6]
        'toro (fatty tuna)'
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    dtype = float_dtype_arg(dtype)
    filename = DATASETS[name]
    text = resources.files("ualign_jax").joinpath("bundled").joinpath(filename).read_text("utf-8")
    data = parse_preflib(text, source=filename)
    if name in _CORRECTED_NAMES:
        data = dataclasses.replace(data, names=_CORRECTED_NAMES[name])
    return data.to_population(dtype)
