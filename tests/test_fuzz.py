"""Fuzz the public API and the ``ualign`` CLI with bad and extreme input (hypothesis).

Every case ends in either a correct value -- finite, probabilities in [0, 1],
``<pi, u_k(., pi)> = 1/(k+1)``, ``WR(A, B) + WR(B, A) = 1``, lower <= exact <= upper, agreement
with brute-force enumeration (tests/brute_force.py) on small games -- or a ``ValueError`` whose
message names the offending argument; the CLI must exit with code 2 and print one
``ualign: error:`` line naming the option or file. Any other exception (a TypeError from inside
JAX, an IndexError, an OverflowError, ...) and any NaN that comes back fail the test.

Hypothesis runs derandomized (the same examples every run, no example database). Shapes, dtypes
and static arguments come from short lists, since each new one costs an XLA compile; the values
inside them are fuzzed. The module runs in about 35 s on two CPU cores.

The ``test_fixed_*`` tests at the end pin bugs this fuzz found when it was written (each
docstring names the file and a one-line reproducer); all are fixed.

The 284 distinct bad inputs tried (test_the_docstring_lists_every_bad_input keeps this list
in step with the catalogues in the code):

Counts (k, ell, num_players, steps, max_opponents, ...):
  1. zero
  2. negative
  3. huge negative
  4. fractional float
  5. integral float
  6. NaN
  7. inf
  8. bool True
  9. numpy bool
  10. numpy float
  11. string
  12. None
  13. list
  14. 1-element array
  15. 0-d float array
  16. 2**31, past int32
  17. 2**40
  18. 2**64
  19. numpy uint64 max
  20. complex
  21. arbitrary object

Array dtypes:
  22. dtype bool
  23. dtype complex128
  24. dtype object
  25. dtype str
  26. dtype datetime64[s]

Array values:
  27. value NaN
  28. value +inf
  29. value -inf
  30. value 1e308 (inf in float32; sums overflow)
  31. value -1e308
  32. value 5e-324 (subnormal; XLA flushes it to 0)
  33. value -1 (a negative weight)
  34. value 0 (zero weights)

Array shapes:
  35. too few axes (rank 0 or 1 utilities / log-weights, rank 0 weights)
  36. a side of length 0 (empty array)
  37. weights whose shape is not the population's (*batch, m)

Weights:
  38. weights: negative
  39. weights: all zero
  40. weights: NaN
  41. weights: inf
  42. weights: sum overflows float64
  43. weights: sum overflows float32
  44. weights: wrong length
  45. weights: 2-D
  46. weights: 0-d
  47. weights: bool
  48. weights: complex
  49. weights: strings
  50. names: wrong length
  51. names: too many

Policies:
  52. unnormalised (x2)
  53. negative entry
  54. NaN entry
  55. +inf entry
  56. -inf entry
  57. all zero
  58. one response too many
  59. one response too few
  60. empty
  61. empty batch
  62. 0-d scalar
  63. bool dtype
  64. complex dtype
  65. object dtype
  66. string dtype
  67. None
  68. dict
  69. ragged nested list
  70. python int too large for int64

DenseGame:
  71. 1-D
  72. not constant-sum
  73. entries outside [0, 1]
  74. NaN entry
  75. bool
  76. strings
  77. empty
  78. player axes of different lengths
  79. not symmetric in the opponents' axes
  80. num_players above its rank
  81. response_payoffs with k=1
  82. win_rate with k = ell = 1
  83. win_tensor with 2 players
  84. count_form with k=1
  85. robust_win_rate with k + ell = 4
  86. robust_win_rate_bounds on a dense game
  87. nlhf (k = 1) on a 3-player game
  88. solve with k=1

Prompt (batch) axes:
  89. policy (3,) vs population (2,)
  90. policy (1,) vs population (2,)
  91. policy (2, 2) vs population (2,)
  92. exploitability, policy (3,)
  93. win_rate ell=1, opponent (3,)
  94. win_rate k=1, opponent (3,)
  95. win_rate, unbatched population, policy (2,) vs opponent (3,)
  96. win_rate, policy (2,) vs opponent (2, 1)
  97. robust_win_rate ell=2, policy (3,)
  98. robust_win_rate_bounds, policy (3,)
  99. mixture with prompt axes (3,)
  100. weights without the prompt axis

Not a population:
  101. string
  102. None
  103. numpy array
  104. ProductMixture
  105. SampledPopulation (no exact values)

Too big to compute:
  106. robust_win_rate, n = 1, ell = 2**31 - 1 (one multiset of 2**31 - 1 entries)
  107. robust_win_rate, n = 3, ell = 10**6 (5e11 multisets)
  108. robust_win_rate_bounds with ell = 10**6 (greedy steps)
  109. win_tensor with 40 players (3**40 entries)
  110. count_form with k = 10**6 (5e11 rows)

solve options:
  111. method None
  112. method int
  113. method wrong case
  114. method with a space
  115. tol 0
  116. tol negative
  117. tol NaN
  118. tol inf
  119. tol string
  120. tol list
  121. tol complex
  122. eta 0
  123. eta negative
  124. eta NaN
  125. eta inf
  126. eta string
  127. tau negative
  128. tau NaN
  129. tau inf
  130. tau None

Baselines:
  131. rlhf beta 0
  132. rlhf beta negative
  133. rlhf beta NaN
  134. rlhf beta string
  135. rlhf beta None
  136. rlhf beta complex
  137. rlhf reference unnormalised
  138. rlhf reference wrong length
  139. rlhf reference negative
  140. rlhf reference NaN
  141. rlhf reference 2-D
  142. rlhf reference string
  143. nash_md tau 0
  144. nash_md tau NaN
  145. nash_md tau string
  146. maximal_lottery 1-D
  147. maximal_lottery not square
  148. maximal_lottery NaN
  149. maximal_lottery strings
  150. maximal_lottery approximate wrong length
  151. bradley_terry_scores NaN
  152. bradley_terry_scores not square

PrefLib text:
  153. empty text
  154. header only
  155. no colon
  156. count not an integer
  157. count zero
  158. count negative
  159. count a float
  160. count above int64
  161. counts summing past int64
  162. count of 5000 digits
  163. empty count
  164. duplicated alternative
  165. duplicated alternative in a tie
  166. alternative 0
  167. negative alternative
  168. alternative out of declared range
  169. alternative id 10**12 (no header)
  170. alternative id of 5000 digits
  171. trailing comma (truncated line)
  172. unclosed brace (truncated line)
  173. stray closing brace
  174. nested braces
  175. empty braces
  176. empty ranking
  177. NUL byte in a line
  178. two colons
  179. NUMBER ALTERNATIVES 0
  180. NUMBER ALTERNATIVES not a number
  181. NUMBER ALTERNATIVES 10**12
  182. NUMBER VOTERS disagrees
  183. NUMBER VOTERS not a number
  184. unknown DATA TYPE
  185. DATA TYPE disagrees with the extension
  186. alternative named twice
  187. alternative name beyond the count
  188. alternative name 0
  189. declared alternatives over the limit
  190. ties in strict (soc) data
  191. incomplete order in complete (toc) data
  192. text as bytes
  193. text None
  194. source None
  195. source int

Files and loaders:
  196. npz without keys
  197. npz with both utilities and log_weights
  198. npz with an unknown key
  199. npz utilities 1-D
  200. npz utilities 3-D
  201. npz utilities empty
  202. npz utilities NaN
  203. npz log_weights inf
  204. npz utilities strings
  205. npz utilities complex
  206. npz utilities bool
  207. npz utilities object (pickled)
  208. npz weights negative
  209. npz weights wrong length
  210. npz weights strings
  211. npz names wrong length
  212. npz names 0-d
  213. npz names 2-D
  214. npz of random bytes
  215. empty npz file
  216. truncated npz
  217. zip whose member is not .npy
  218. a .npy array named .npz
  219. non-UTF-8 PrefLib file
  220. PrefLib file with an error on line 3
  221. unknown extension
  222. path None
  223. path int
  224. dtype int
  225. dtype complex
  226. dtype nonsense
  227. unknown data set
  228. data set name not a string
  229. a .soc path that does not exist
  230. a .npz path that does not exist
  231. a folder

Random inputs:
  232. random method names (hypothesis text)
  233. random PrefLib lines: counts, ids, braces, commas, headers, random text
  234. random bytes as a PrefLib file
  235. the netflix PrefLib file cut at a random offset
  236. the netflix PrefLib file with a random character inserted
  237. random .npz archives (random rank, dtype, special values, weights)

The ualign CLI:
  238. solve --k 0
  239. solve --k -3
  240. solve --k x
  241. solve --k 1.5
  242. solve --k 2**40
  243. solve --steps 0
  244. solve --tol nan
  245. solve --tol -1
  246. solve --method nope
  247. solve a missing file
  248. solve a directory
  249. unknown subcommand
  250. unknown option
  251. evaluate --k 0
  252. evaluate --k 1--3
  253. evaluate --ell x
  254. evaluate --ell 10**6
  255. evaluate a missing policy
  256. demo --k-max 0
  257. --policy: JSON syntax error
  258. --policy: JSON without a policy key
  259. --policy: JSON string
  260. --policy: JSON null
  261. --policy: JSON nested list
  262. --policy: JSON ragged list
  263. --policy: JSON wrong length
  264. --policy: JSON NaN
  265. --policy: JSON negative entry
  266. --policy: JSON unnormalised
  267. --policy: JSON overflowing number
  268. --policy: random bytes .npy
  269. --policy: random bytes .npz
  270. --policy: npz without a policy key
  271. --policy: unsupported extension

Bugs found and fixed (tests at the end):
  272. Plackett-Luce log-weights spread over >= ~745 (float64) or >= ~100 (float32)
  273. names=3 (not a sequence)
  274. win_tensor with num_players = 10**6
  275. count_form_payoffs with an unnormalised policy
  276. count_form_payoffs with a policy of the wrong length
  277. solve with tau = 1e308 and a tol
  278. utilities that differ only by a subnormal (5e-324 vs 0)
  279. --out is an existing file (error comes after solving, below a progress line)
  280. --out inside a file (FileExistsError)
  281. empty .npy policy (EOFError)
  282. complex .npy policy (imaginary part dropped)
  283. JSON booleans as a policy
  284. --k 1-100000000000 (MemoryError)

Counts are tried on every count argument (k, ell, num_players, steps, mixture_size,
max_opponents, num_responses); policies on response_payoffs, exploitability, win_rate (policy and
opponent), robust_win_rate and ProductMixture; non-populations on every function taking ``pop``.

Edge inputs that must give correct values (not counted above): k and ell of 10**6 and 2**31 - 1,
numpy int8 127 (k + 1 overflows int8), numpy uint64 and 0-d int arrays as counts; policies as
lists, float32, float16 (promoted to float32), int one-hot and batches; int, uint8 and float16
utilities; one response (n = 1), one user (m = 1), duplicated users, every response tied,
Plackett-Luce log-weights in [-20, 20]; a subnormal weight beside normal ones; max_opponents
above 2**31; DenseGame num_players=None; rlhf beta of np.float32(2), 1e-320 and inf; and
solve(tol=np.float32(0.5)).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ualign_jax as ua
from ualign_jax.cli import main as cli_main

from . import brute_force as bf

pytestmark = pytest.mark.fuzz  # deselect with -m 'not fuzz'

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)
NETFLIX = Path(ua.__file__).resolve().parent / "datasets" / "00004-00000001.soc"

# One population shape for most value checks: every new shape, dtype or static argument costs
# an XLA compile (~0.3 s on two cores), so the fuzz varies values, not shapes.
U3 = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
POP = ua.RankingPopulation(U3)
PI = np.array([0.2, 0.3, 0.5])
SAMPLED = ua.SampledPopulation(lambda key, num: jnp.zeros((num, 3)), lambda u, pool: pool, 3)

REJECTED = object()


def fuzz(max_examples: int):
    """Deterministic hypothesis settings: CI sees the same examples every run."""
    return settings(FUZZ, max_examples=max_examples)


def outcome(call, *names):
    """``call()``'s value, or ``REJECTED`` after a ``ValueError`` naming one of ``names``.

    Any other exception propagates: a TypeError from inside JAX, an IndexError or a
    ZeroDivisionError is a bug, never an acceptable answer to bad input.
    """
    try:
        return call()
    except ValueError as err:
        message = str(err)
        assert any(name in message for name in names), f"unclear message {message!r}: {names}"
        return REJECTED


def rejects(call, *names):
    result = outcome(call, *names)
    assert result is REJECTED, f"bad input accepted; returned {result!r}"


def assert_probabilities(values, atol=1e-9):
    values = np.asarray(values, dtype=np.float64)
    assert np.all(np.isfinite(values)), f"non-finite value came back: {values}"
    assert np.all(values >= -atol) and np.all(values <= 1 + atol), values


def assert_simplex(policy, atol=1e-6):
    policy = np.asarray(policy, dtype=np.float64)
    assert_probabilities(policy, atol)
    np.testing.assert_allclose(policy.sum(axis=-1), 1.0, atol=atol)


def check_payoffs(pop_rules, weights, policy, k, got, atol=1e-9):
    """``got`` = u_k(., policy): probabilities, <policy, u> = 1/(k+1), brute force when small."""
    assert_probabilities(got, atol)
    np.testing.assert_allclose(np.asarray(policy) @ np.asarray(got), 1 / (k + 1), atol=atol)
    if pop_rules is not None and len(policy) ** k <= 100:
        expected = bf.payoffs(pop_rules, weights, policy, k)
        np.testing.assert_allclose(got, expected, atol=atol)


# --------------------------------------------------------------------------- catalogues

#: Bad values for every count argument (k, ell, num_players, steps, max_opponents, ...).
BAD_COUNTS = {
    "zero": 0,
    "negative": -1,
    "huge negative": -(2**40),
    "fractional float": 2.5,
    "integral float": 2.0,
    "NaN": math.nan,
    "inf": math.inf,
    "bool True": True,
    "numpy bool": np.bool_(True),
    "numpy float": np.float64(2.0),
    "string": "3",
    "None": None,
    "list": [3],
    "1-element array": np.array([3]),
    "0-d float array": np.array(2.5),
    "2**31, past int32": 2**31,
    "2**40": 2**40,
    "2**64": 2**64,
    "numpy uint64 max": np.uint64(2**64 - 1),
    "complex": complex(2, 0),
    "arbitrary object": object(),
}
HUGE_COUNTS = ("2**31, past int32", "2**40", "2**64", "numpy uint64 max")
#: Unusual but valid counts: each must give a correct value.
EDGE_COUNTS = {
    "10**6": 10**6,
    "2**31 - 1": 2**31 - 1,
    "numpy int8 127 (k + 1 overflows int8)": np.int8(127),
    "numpy uint64 3": np.uint64(3),
    "0-d int array": np.array(2),
}

#: Every public count argument, as ``name -> call(value)``.
COUNT_ARGUMENTS = {
    "response_payoffs k": ("k", lambda v: ua.response_payoffs(POP, PI, v)),
    "exploitability k": ("k", lambda v: ua.exploitability(POP, PI, v)),
    "win_rate k": ("k", lambda v: ua.win_rate(POP, PI, v, PI, 2)),
    "win_rate ell": ("ell", lambda v: ua.win_rate(POP, PI, 2, PI, v)),
    "robust_win_rate k": ("k", lambda v: ua.robust_win_rate(POP, PI, v, 2)),
    "robust_win_rate ell": ("ell", lambda v: ua.robust_win_rate(POP, PI, 2, v)),
    "robust_win_rate max_opponents": (
        "max_opponents",
        lambda v: ua.robust_win_rate(POP, PI, 2, 2, max_opponents=v),
    ),
    "robust_win_rate_bounds k": ("k", lambda v: ua.robust_win_rate_bounds(POP, PI, v, 2)),
    "robust_win_rate_bounds ell": ("ell", lambda v: ua.robust_win_rate_bounds(POP, PI, 2, v)),
    "win_tensor num_players": ("num_players", lambda v: ua.win_tensor(POP, v)),
    "count_form k": ("k", lambda v: ua.count_form(POP, v)),
    "solve k": ("k", lambda v: ua.solve(POP, v, steps=5)),
    "solve steps": ("steps", lambda v: ua.solve(POP, 2, steps=v)),
    "solve mixture_size": ("mixture_size", lambda v: ua.solve(POP, 2, steps=5, mixture_size=v)),
    "nlhf steps": ("steps", lambda v: ua.nlhf(POP, steps=v)),
    "DenseGame num_players": ("num_players", lambda v: ua.DenseGame(np.full((2, 2), 0.5), v)),
    "uniform_policy num_responses": ("num_responses", lambda v: ua.uniform_policy(v)),
}


def _replace_first(value):
    def corrupt(p):
        p = np.array(p, dtype=np.float64)
        p.flat[0] = value
        return p

    return corrupt


#: Ways to spoil a valid policy ``p`` ([n] float64 on the simplex).
BAD_POLICIES = {
    "unnormalised (x2)": lambda p: 2 * p,
    "negative entry": lambda p: np.concatenate([[-0.5], p[1:] + 0.5 / max(len(p) - 1, 1)]),
    "NaN entry": _replace_first(math.nan),
    "+inf entry": _replace_first(math.inf),
    "-inf entry": _replace_first(-math.inf),
    "all zero": lambda p: np.zeros_like(p),
    "one response too many": lambda p: np.append(p, 0.0),
    "one response too few": lambda p: p[:-1] / p[:-1].sum() if p[:-1].sum() > 0 else p[:-1],
    "empty": lambda p: np.zeros(0),
    "empty batch": lambda p: np.zeros((0, len(p))),
    "0-d scalar": lambda p: np.float64(1.0),
    "bool dtype": lambda p: p > 0,
    "complex dtype": lambda p: p.astype(np.complex128),
    "object dtype": lambda p: p.astype(object),
    "string dtype": lambda p: p.astype(str),
    "None": lambda p: None,
    "dict": lambda p: {"policy": p},
    "ragged nested list": lambda p: [list(p), [1.0]],
    "python int too large for int64": lambda p: [2**70] + [0] * (len(p) - 1),
}
#: Valid spellings of a policy that must be accepted.
EDGE_POLICIES = {
    "python list": lambda p: list(p),
    "float32": lambda p: p.astype(np.float32),
    "float16 (promoted to float32)": lambda p: p.astype(np.float16),
    "int one-hot": lambda p: (np.arange(len(p)) == 0).astype(np.int64),
    "batch of two prompts": lambda p: np.stack([p, p[::-1]]),
}
FLOAT16_ROUNDING = 1e-3  # float16 policies sum to 1 only to ~1e-3

#: Bad weights for ``RankingPopulation(U3, weights)`` and ``ProductMixture(policies, weights)``.
BAD_WEIGHTS = {
    "negative": np.array([1.0, -1.0]),
    "all zero": np.zeros(2),
    "NaN": np.array([math.nan, 1.0]),
    "inf": np.array([math.inf, 1.0]),
    "sum overflows float64": np.array([1e308, 1e308]),
    "sum overflows float32": np.array([3e38, 3e38], dtype=np.float32),
    "wrong length": np.ones(3),
    "2-D": np.ones((2, 1)),
    "0-d": np.array(1.0),
    "bool": np.array([True, True]),
    "complex": np.array([1 + 0j, 1]),
    "strings": np.array(["a", "b"]),
}

#: Array dtypes and special values the array fuzz draws from (each one a bad-input category,
#: except the real dtypes with finite values).
DTYPES = (
    "float64",
    "float32",
    "float16",
    "int64",
    "uint8",
    "bool",
    "complex128",
    "object",
    "str",
    "datetime64[s]",
)
SPECIALS = {
    "NaN": math.nan,
    "+inf": math.inf,
    "-inf": -math.inf,
    "1e308 (inf in float32; sums overflow)": 1e308,
    "-1e308": -1e308,
    "5e-324 (subnormal; XLA flushes it to 0)": 5e-324,
    "-1 (a negative weight)": -1.0,
    "0 (zero weights)": 0.0,
}
REAL_KINDS = "fiu"


# --------------------------------------------------------------------------- array fuzz


@st.composite
def arrays(draw, min_side=0, max_rank=3):
    """Arrays of random rank (0-3), sides (0-3), dtype and values, sometimes with a special."""
    shape = tuple(draw(st.lists(st.integers(min_side, 3), max_size=max_rank)))
    size = math.prod(shape)
    values = np.asarray(
        draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=size, max_size=size)), float
    ).reshape(shape)
    if size and draw(st.booleans()):
        values.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from(list(SPECIALS.values())))
    return cast(values, draw(st.sampled_from(DTYPES)))


def cast(values, dtype):
    with np.errstate(all="ignore"):
        kind = np.dtype(dtype).kind
        if kind in "iuM":
            ints = np.round(np.where(np.isfinite(values), values, 0.0) + 3).astype(np.int64)
            return ints.astype(dtype)
        if kind == "b":
            return values > 0
        if kind == "c":
            return (values + 0.5j).astype(dtype)
        return values.astype(dtype)


def computing_dtype(arr):
    """The float dtype the library computes in for a real array (half precision -> float32)."""
    if arr.dtype.kind in "iu":
        return np.dtype(np.float64)  # x64 is on in the tests
    return np.dtype(np.float32) if arr.dtype.itemsize < 4 else arr.dtype


def valid_matrix(arr, min_ndim=2):
    """A real, finite, nonempty array with at least ``min_ndim`` axes (after promotion)."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in REAL_KINDS:
        return False
    if arr.ndim < min_ndim or 0 in arr.shape:
        return False
    with np.errstate(all="ignore"):
        return bool(np.all(np.isfinite(arr.astype(computing_dtype(arr)))))


def valid_weights(weights, shape):
    if weights is None:
        return True
    if not valid_matrix(weights, 1) or weights.shape != shape:
        return False
    with np.errstate(all="ignore"):
        w = weights.astype(computing_dtype(weights))
        sums = w.sum(axis=-1)
    tiny = np.finfo(w.dtype).tiny  # a subnormal sum is zero to XLA
    return bool(w.min() >= 0 and np.all(sums >= tiny) and np.all(np.isfinite(sums)))


@fuzz(100)
@given(
    kind=st.sampled_from(["ranking", "plackett_luce"]),
    params=arrays(),
    weights=st.one_of(st.none(), arrays(max_rank=2)),
    right_shape=st.one_of(
        st.none(), st.sampled_from(DTYPES), st.sampled_from(list(SPECIALS.values()))
    ),
)
def test_population_constructors_accept_exactly_the_valid_arrays(
    kind, params, weights, right_shape
):
    if right_shape is not None and params.ndim >= 2:  # weights of the right shape
        weights = np.ones(params.shape[:-1])
        if isinstance(right_shape, str):
            weights = cast(weights, right_shape)
        elif weights.size:
            weights.flat[0] = right_shape
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    name = "utilities" if kind == "ranking" else "log_weights"
    pop = outcome(lambda: make(params, weights), name, "weights")
    valid = valid_matrix(params) and valid_weights(weights, params.shape[:-1])
    assert (pop is not REJECTED) == valid, (params, weights)
    if pop is not REJECTED:
        assert pop.dtype in (jnp.float32, jnp.float64)
        assert (pop.num_users, pop.num_responses) == params.shape[-2:]
        assert_probabilities(pop.weights)
        np.testing.assert_allclose(np.sum(pop.weights, axis=-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", list(BAD_WEIGHTS))
def test_bad_weights_are_rejected(name):
    weights = BAD_WEIGHTS[name]
    rejects(lambda: ua.RankingPopulation(U3, weights), "weights")
    rejects(lambda: ua.PlackettLucePopulation(U3, weights), "weights")
    rejects(lambda: ua.ProductMixture(np.eye(2, dtype=np.float32), weights), "weights")


BAD_NAMES = {"wrong length": ["a"], "too many": ["a", "b", "c", "d"]}


@pytest.mark.parametrize("name", list(BAD_NAMES))
def test_bad_names_are_rejected(name):
    rejects(lambda: ua.RankingPopulation(U3, names=BAD_NAMES[name]), "names")


#: DenseGame misuse: (win_tensor, num_players) pairs that must be rejected.
BAD_DENSE = {
    "1-D": (np.array([0.5]), None),
    "not constant-sum": (np.ones((2, 2)), None),
    "entries outside [0, 1]": (np.array([[0.5, 2.0], [-1.0, 0.5]]), None),
    "NaN entry": (np.array([[math.nan, 1.0], [0.0, 0.5]]), None),
    "bool": (np.array([[True, False], [False, True]]), None),
    "strings": (np.array([["a", "b"], ["c", "d"]]), None),
    "empty": (np.zeros((0, 0)), None),
    "player axes of different lengths": (np.full((2, 3), 0.5), None),
    "not symmetric in the opponents' axes": (
        np.array(ua.win_tensor(POP, 3)).transpose(1, 0, 2),
        None,
    ),
    "num_players above its rank": (np.full((2, 2), 0.5), 3),
}


@pytest.mark.parametrize("name", list(BAD_DENSE))
def test_dense_game_rejects_bad_tensors(name):
    tensor, players = BAD_DENSE[name]
    rejects(lambda: ua.DenseGame(tensor, players), "win_tensor", "num_players")


GAME = ua.DenseGame(ua.win_tensor(POP, 3))  # the 3-player game of POP
#: Calls that do not fit a 3-player DenseGame: (fragment of the message, call).
DENSE_MISUSE = {
    "response_payoffs with k=1": ("k=1", lambda: ua.response_payoffs(GAME, PI, 1)),
    "win_rate with k = ell = 1": ("k=1", lambda: ua.win_rate(GAME, PI, 1, PI, 1)),
    "win_tensor with 2 players": ("num_players", lambda: ua.win_tensor(GAME, 2)),
    "count_form with k=1": ("k=1", lambda: ua.count_form(GAME, 1)),
    "robust_win_rate with k + ell = 4": ("k + ell", lambda: ua.robust_win_rate(GAME, PI, 1, 3)),
    "robust_win_rate_bounds on a dense game": (
        "robust_win_rate_bounds",
        lambda: ua.robust_win_rate_bounds(GAME, PI, 2, 1),
    ),
    "nlhf (k = 1) on a 3-player game": ("k=1", lambda: ua.nlhf(GAME)),
    "solve with k=1": ("k=1", lambda: ua.solve(GAME, 1, steps=5)),
}


@pytest.mark.parametrize("name", list(DENSE_MISUSE))
def test_dense_game_misuse(name):
    fragment, call = DENSE_MISUSE[name]
    rejects(call, fragment)


def test_dense_game_values():
    game = GAME
    np.testing.assert_allclose(
        ua.response_payoffs(game, PI, 2), ua.response_payoffs(POP, PI, 2), atol=1e-12
    )
    one = ua.DenseGame(np.array([[0.5]]))  # one response: always a tie
    np.testing.assert_allclose(ua.response_payoffs(one, np.array([1.0]), 1), [0.5])


# --------------------------------------------------------------------------- policies


@st.composite
def policies(draw, n, zeros=True):
    """A float64 policy on the simplex with n entries, often with zeros (degenerate)."""
    raw = np.asarray(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), float)
    if zeros and draw(st.booleans()):
        raw[draw(st.integers(0, n - 1))] = 0.0
    if raw.sum() <= 1e-3:
        raw[draw(st.integers(0, n - 1))] = 1.0
    return raw / raw.sum()


POLICY_CALLS = {
    "response_payoffs": lambda p, k: ua.response_payoffs(POP, p, k),
    "exploitability": lambda p, k: ua.exploitability(POP, p, k),
    "win_rate policy": lambda p, k: ua.win_rate(POP, p, k, PI, 1),
    "win_rate opponent": lambda p, k: ua.win_rate(POP, PI, k, p, 1),
    "robust_win_rate": lambda p, k: ua.robust_win_rate(POP, p, k),
    "ProductMixture": lambda p, k: ua.ProductMixture(np.asarray(p)[None] if p is not None else p),
}


@fuzz(120)
@given(
    policy=policies(3),
    corruption=st.sampled_from(list(BAD_POLICIES)),
    call=st.sampled_from(list(POLICY_CALLS)),
    k=st.sampled_from([1, 2]),
)
def test_bad_policies_are_rejected_naming_the_argument(policy, corruption, call, k):
    bad = BAD_POLICIES[corruption](policy)
    rejects(lambda: POLICY_CALLS[call](bad, k), "policy", "policies", "opponent")


@fuzz(40)
@given(policy=policies(3), spelling=st.sampled_from(list(EDGE_POLICIES)), k=st.just(2))
def test_valid_policy_spellings_give_exact_payoffs(policy, spelling, k):
    p = EDGE_POLICIES[spelling](policy)
    u = outcome(lambda: ua.response_payoffs(POP, p, k), "policy")
    if u is REJECTED:  # float16 rounding can leave the simplex by more than float32's 1e-4
        assert "float16" in spelling
        return
    u = np.asarray(u, dtype=np.float64)
    rows = np.atleast_2d(np.asarray(p, dtype=np.float64))
    atol = FLOAT16_ROUNDING if "float16" in spelling else 1e-6
    rows = rows / rows.sum(axis=-1, keepdims=True)
    for row, got in zip(rows, np.atleast_2d(u), strict=True):
        check_payoffs(bf.rules("ranking", U3), [0.5, 0.5], row, k, got, atol=atol)


@fuzz(40)
@given(
    components=st.lists(policies(3), min_size=1, max_size=2),
    alphas=st.lists(st.floats(0, 5), min_size=2, max_size=2),
    k=st.just(2),
)
def test_product_mixtures_average_their_components(components, alphas, k):
    alphas = np.asarray(alphas[: len(components)])
    stacked = np.stack(components)
    mixture = outcome(lambda: ua.ProductMixture(stacked, alphas), "weights")
    if alphas.sum() < np.finfo(np.float64).tiny:  # zero, or subnormal (XLA flushes those to 0)
        assert mixture is REJECTED
        return
    alphas = alphas / alphas.sum()
    got = ua.response_payoffs(POP, mixture, k)
    expected = sum(a * ua.response_payoffs(POP, c, k) for a, c in zip(alphas, stacked, strict=True))
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert_simplex(mixture.marginal())
    # T1: the robust win rate of a mixture is 1 - max_y u_k(y, A).
    np.testing.assert_allclose(ua.robust_win_rate(POP, mixture, k), 1 - np.max(got), atol=1e-12)


# --------------------------------------------------------------------------- counts


@fuzz(200)
@given(argument=st.sampled_from(list(COUNT_ARGUMENTS)), bad=st.sampled_from(list(BAD_COUNTS)))
def test_bad_counts_are_rejected_naming_the_argument(argument, bad):
    name, call = COUNT_ARGUMENTS[argument]
    if name == "max_opponents" and bad in HUGE_COUNTS:  # a limit: any size is fine
        exact = ua.robust_win_rate(POP, PI, 2, 2)
        np.testing.assert_allclose(call(BAD_COUNTS[bad]), exact, atol=1e-15)
        return
    if argument == "DenseGame num_players" and bad == "None":  # None: all axes (the default)
        assert call(None).num_players == 2
        return
    rejects(lambda: call(BAD_COUNTS[bad]), name)


@pytest.mark.parametrize("edge", list(EDGE_COUNTS))
def test_edge_counts_give_correct_values(edge):
    k = EDGE_COUNTS[edge]
    kk = int(k)
    u = ua.response_payoffs(POP, PI, k)
    check_payoffs(None, None, PI, kk, u, atol=1e-9)
    np.testing.assert_allclose(ua.exploitability(POP, PI, k), np.max(u) - 1 / (kk + 1), atol=1e-12)
    if kk < 2**31 - 1:
        return
    # Constant sum with a multi-output opponent, both ways round (the quadrature must resolve
    # integrands concentrated within 1/k of t = 1).
    forward = ua.win_rate(POP, PI, k, PI[::-1], 2)
    backward = ua.win_rate(POP, PI[::-1], 2, PI, k)
    assert_probabilities([forward, backward])
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-9)


def test_huge_ell_and_one_response():
    one = ua.RankingPopulation(np.zeros((1, 1)))  # n = 1: every pool is one big tie
    for ell in (10**6, 2**31 - 1):
        # k positions tied with ell positions: share k / (k + ell).
        np.testing.assert_allclose(
            ua.win_rate(one, np.array([1.0]), 3, np.array([1.0]), ell), 3 / (3 + ell), rtol=1e-9
        )
    np.testing.assert_allclose(
        ua.robust_win_rate(one, np.array([1.0]), 3, 10**6), 3 / (3 + 10**6), rtol=1e-9
    )


ONE = ua.RankingPopulation(np.zeros((1, 1)))
#: Valid counts whose exact answer is too big to compute: (fragment of the message, call).
TOO_BIG = {
    "robust_win_rate, n = 1, ell = 2**31 - 1 (one multiset of 2**31 - 1 entries)": (
        "ell",
        lambda: ua.robust_win_rate(ONE, np.array([1.0]), 3, 2**31 - 1),
    ),
    "robust_win_rate, n = 3, ell = 10**6 (5e11 multisets)": (
        "max_opponents",
        lambda: ua.robust_win_rate(POP, PI, 2, 10**6),
    ),
    "robust_win_rate_bounds with ell = 10**6 (greedy steps)": (
        "ell",
        lambda: ua.robust_win_rate_bounds(POP, PI, 2, 10**6),
    ),
    "win_tensor with 40 players (3**40 entries)": ("num_players", lambda: ua.win_tensor(POP, 40)),
    "count_form with k = 10**6 (5e11 rows)": ("C(n+k-1, k)", lambda: ua.count_form(POP, 10**6)),
}


@pytest.mark.parametrize("name", list(TOO_BIG))
def test_too_big_requests_are_rejected(name):
    fragment, call = TOO_BIG[name]
    rejects(call, fragment)


# --------------------------------------------------------------------------- prompt axes

BATCHED = ua.RankingPopulation(np.stack([U3, U3[::-1]]))  # two prompts
P2 = np.full((2, 3), 1 / 3)
P3 = np.full((3, 3), 1 / 3)
#: Mismatched prompt (batch) axes between population, policy and opponent.
BAD_BATCHES = {
    "policy (3,) vs population (2,)": lambda: ua.response_payoffs(BATCHED, P3, 2),
    "policy (1,) vs population (2,)": lambda: ua.response_payoffs(BATCHED, P3[:1], 2),
    "policy (2, 2) vs population (2,)": lambda: ua.response_payoffs(BATCHED, np.stack([P2] * 2), 2),
    "exploitability, policy (3,)": lambda: ua.exploitability(BATCHED, P3, 2),
    "win_rate ell=1, opponent (3,)": lambda: ua.win_rate(BATCHED, P2, 2, P3, 1),
    "win_rate k=1, opponent (3,)": lambda: ua.win_rate(BATCHED, P2, 1, P3, 2),
    "win_rate, unbatched population, policy (2,) vs opponent (3,)": lambda: ua.win_rate(
        POP, P2, 2, P3, 1
    ),
    "win_rate, policy (2,) vs opponent (2, 1)": lambda: ua.win_rate(POP, P2, 2, P2[:, None], 1),
    "robust_win_rate ell=2, policy (3,)": lambda: ua.robust_win_rate(BATCHED, P3, 2, 2),
    "robust_win_rate_bounds, policy (3,)": lambda: ua.robust_win_rate_bounds(BATCHED, P3, 2, 2),
    "mixture with prompt axes (3,)": lambda: ua.response_payoffs(
        BATCHED, ua.ProductMixture(np.stack([np.eye(3)] * 3)), 2
    ),
    "weights without the prompt axis": lambda: ua.RankingPopulation(np.stack([U3, U3]), np.ones(2)),
}


@pytest.mark.parametrize("name", list(BAD_BATCHES))
def test_mismatched_prompt_axes_are_rejected(name):
    rejects(BAD_BATCHES[name], "batch", "weights must have shape")


def test_shared_and_matching_prompt_axes_give_per_prompt_values():
    for policy in (PI, np.stack([PI, PI[::-1]])):
        got = ua.win_rate(BATCHED, policy, 2, PI, 1)
        rows = np.broadcast_to(policy, (2, 3))
        for i in range(2):
            pop = ua.RankingPopulation(np.asarray(BATCHED.utilities[i]))
            np.testing.assert_allclose(got[i], ua.win_rate(pop, rows[i], 2, PI, 1), atol=1e-12)


#: Things that are not populations.
BAD_POPULATIONS = {
    "string": "pop",
    "None": None,
    "numpy array": U3,
    "ProductMixture": ua.ProductMixture(np.eye(3)),
    "SampledPopulation (no exact values)": SAMPLED,
}
POPULATION_CALLS = {
    "response_payoffs": lambda pop: ua.response_payoffs(pop, PI, 2),
    "win_rate": lambda pop: ua.win_rate(pop, PI, 2, PI, 2),
    "exploitability": lambda pop: ua.exploitability(pop, PI, 2),
    "robust_win_rate": lambda pop: ua.robust_win_rate(pop, PI, 2, 2),
    "robust_win_rate_bounds": lambda pop: ua.robust_win_rate_bounds(pop, PI, 2, 2),
    "win_tensor": lambda pop: ua.win_tensor(pop, 2),
    "count_form": lambda pop: ua.count_form(pop, 2),
    "solve": lambda pop: ua.solve(pop, 2, steps=5),
    "nlhf": lambda pop: ua.nlhf(pop),
    "rlhf": lambda pop: ua.rlhf(pop),
    "reference_policy": lambda pop: ua.reference_policy(pop),
}


@fuzz(60)
@given(pop=st.sampled_from(list(BAD_POPULATIONS)), call=st.sampled_from(list(POPULATION_CALLS)))
def test_non_populations_are_rejected(pop, call):
    rejects(lambda: POPULATION_CALLS[call](BAD_POPULATIONS[pop]), "pop")


# --------------------------------------------------------------------------- exact values


@st.composite
def small_games(draw):
    """A ranking or Plackett-Luce population of 1 or 2 users over 3 responses, weights, policy.

    Ranking utilities take 3 levels, so ties, all-tied rows and duplicated users are common;
    shapes come from a short list to bound the number of XLA compiles.
    """
    kind = draw(st.sampled_from(["ranking", "plackett_luce"]))
    m, n = draw(st.sampled_from([(2, 3), (1, 3)]))
    if kind == "ranking":
        params = np.asarray(draw(st.lists(st.integers(0, 2), min_size=m * n, max_size=m * n)))
        params = params.reshape(m, n).astype(np.float64)
        if draw(st.booleans()):
            params[-1] = params[0]  # a duplicated user
    else:
        cells = st.lists(st.floats(-20, 20), min_size=m * n, max_size=m * n)
        params = np.asarray(draw(cells)).reshape(m, n)
    weights = np.asarray(draw(st.lists(st.floats(0, 10), min_size=m, max_size=m)))
    if weights.sum() <= 1e-6:
        weights = None
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    pop = make(params, weights)
    normalised = np.full(m, 1 / m) if weights is None else weights / weights.sum()
    return pop, bf.rules(kind, params), normalised, draw(policies(n))


@fuzz(15)
@given(game=small_games(), k=st.sampled_from([1, 3]), opponent_seed=st.integers(0, 3))
def test_payoff_identities_on_random_small_games(game, k, opponent_seed):
    pop, rules, weights, policy = game
    n = len(policy)
    u = ua.response_payoffs(pop, policy, k)
    check_payoffs(rules, weights, policy, k, u)
    eps = float(ua.exploitability(pop, policy, k))
    assert eps >= -1e-9 and math.isfinite(eps)  # Plackett-Luce quadrature: ~1e-12
    robust = float(ua.robust_win_rate(pop, policy, k))
    np.testing.assert_allclose(robust, 1 - np.max(u), atol=1e-12)
    np.testing.assert_allclose(robust, k / (k + 1) - eps, atol=1e-12)  # T1 with equality
    opponent = np.roll(policy, opponent_seed % n)
    forward = float(ua.win_rate(pop, policy, k, opponent, 1))
    backward = float(ua.win_rate(pop, opponent, 1, policy, k))
    assert_probabilities([forward, backward])
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-12)
    assert robust <= forward + 1e-12


@fuzz(6)
@given(
    kind=st.sampled_from(["ranking", "plackett_luce"]),
    order=st.permutations([0.0, 1.0, 2.0]),
    policy=policies(3),
    opponent=policies(3),
)
def test_multi_output_opponents_against_brute_force(kind, order, policy, opponent):
    params = np.stack([np.asarray(order), np.asarray(order)[::-1] * 1.5])  # no ties
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    pop, rules = make(params), bf.rules(kind, params)
    k = ell = 2
    forward = float(ua.win_rate(pop, policy, k, opponent, ell))
    np.testing.assert_allclose(
        forward, bf.win_rate(rules, [0.5, 0.5], policy, k, opponent, ell), atol=1e-9
    )
    backward = float(ua.win_rate(pop, opponent, ell, policy, k))
    np.testing.assert_allclose(forward + backward, 1.0, atol=1e-9)
    exact = float(ua.robust_win_rate(pop, policy, k, ell))
    np.testing.assert_allclose(
        exact, bf.robust_win_rate(rules, [0.5, 0.5], policy, k, ell), atol=1e-9
    )
    bounds = ua.robust_win_rate_bounds(pop, policy, k, ell)
    assert_probabilities([bounds.lower, bounds.upper])
    assert float(bounds.lower) <= exact + 1e-9 <= float(bounds.upper) + 2e-9
    assert exact <= forward + 1e-9


@fuzz(8)
@given(policy=policies(3), players=st.sampled_from([2, 3]))
def test_win_tensor_and_count_form_agree_with_payoffs(policy, players):
    tensor = np.asarray(ua.win_tensor(POP, players))
    assert tensor.shape == (3,) * players
    assert_probabilities(tensor)
    u = tensor
    for _ in range(players - 1):
        u = u @ policy
    np.testing.assert_allclose(u, ua.response_payoffs(POP, policy, players - 1), atol=1e-12)
    if players == 3:
        form = ua.count_form(POP, players - 1)
        np.testing.assert_allclose(
            ua.count_form_payoffs(form, policy), ua.response_payoffs(POP, policy, players - 1)
        )


@fuzz(10)
@given(policy=policies(3), kind=st.sampled_from(["ranking", "plackett_luce"]))
def test_float32_stays_finite_and_accurate(policy, kind):
    make = ua.RankingPopulation if kind == "ranking" else ua.PlackettLucePopulation
    pop = make(U3.astype(np.float32))
    p32 = (policy / policy.sum()).astype(np.float32)
    u = ua.response_payoffs(pop, p32, 2)
    assert u.dtype == jnp.float32
    check_payoffs(bf.rules(kind, U3), [0.5, 0.5], p32.astype(np.float64), 2, u, atol=2e-6)


# --------------------------------------------------------------------------- solve

BAD_SOLVER_OPTIONS = {
    "method None": ("method", {"method": None}),
    "method int": ("method", {"method": 3}),
    "method wrong case": ("method", {"method": "Hedge"}),
    "method with a space": ("method", {"method": " hedge"}),
    "tol 0": ("tol", {"tol": 0}),
    "tol negative": ("tol", {"tol": -1e-3}),
    "tol NaN": ("tol", {"tol": math.nan}),
    "tol inf": ("tol", {"tol": math.inf}),
    "tol string": ("tol", {"tol": "1e-3"}),
    "tol list": ("tol", {"tol": [1e-3]}),
    "tol complex": ("tol", {"tol": 1e-3j}),
    "eta 0": ("eta", {"eta": 0}),
    "eta negative": ("eta", {"eta": -1.0}),
    "eta NaN": ("eta", {"eta": math.nan}),
    "eta inf": ("eta", {"eta": math.inf}),
    "eta string": ("eta", {"eta": "big"}),
    "tau negative": ("tau", {"tau": -0.1}),
    "tau NaN": ("tau", {"tau": math.nan}),
    "tau inf": ("tau", {"tau": math.inf}),
    "tau None": ("tau", {"tau": None}),
}


@pytest.mark.parametrize("name", list(BAD_SOLVER_OPTIONS))
def test_bad_solver_options_are_rejected(name):
    argument, options = BAD_SOLVER_OPTIONS[name]
    rejects(lambda: ua.solve(POP, 2, steps=5, **options), argument)


@fuzz(30)
@given(method=st.text(max_size=12))
def test_unknown_method_names_are_rejected(method):
    if method in ua.METHODS:
        return
    rejects(lambda: ua.solve(POP, 2, steps=5, method=method), "method")


@pytest.mark.parametrize(
    ("method", "steps", "tol"),
    [("hedge", 20, None), ("optimistic_gradient", 5, 0.5)],
)
def test_short_solves_return_valid_solutions(method, steps, tol):
    sol = ua.solve(POP, 2, method=method, steps=steps, tol=tol)
    assert_simplex(sol.policy)
    assert_simplex(sol.mixture.policies[: int(sol.num_steps)])
    assert sol.outcome_name in ("successful", "max_steps_reached")
    for field in sol.trace:
        assert np.all(np.isfinite(np.asarray(field)))
    np.testing.assert_allclose(
        sol.trace.exploitability[int(sol.num_steps) - 1],
        ua.exploitability(POP, sol.policy, 2),
        atol=1e-12,
    )


def test_solve_on_one_response():
    one = ua.RankingPopulation(np.zeros((1, 1)))
    sol = ua.solve(one, 2, steps=5)
    np.testing.assert_array_equal(sol.policy, [1.0])
    np.testing.assert_allclose(ua.response_payoffs(one, sol.policy, 2), [1 / 3])


# --------------------------------------------------------------------------- baselines

BAD_BASELINE_CALLS = {
    "rlhf beta 0": ("beta", lambda: ua.rlhf(POP, beta=0)),
    "rlhf beta negative": ("beta", lambda: ua.rlhf(POP, beta=-1.0)),
    "rlhf beta NaN": ("beta", lambda: ua.rlhf(POP, beta=math.nan)),
    "rlhf beta string": ("beta", lambda: ua.rlhf(POP, beta="1")),
    "rlhf beta None": ("beta", lambda: ua.rlhf(POP, beta=None)),
    "rlhf beta complex": ("beta", lambda: ua.rlhf(POP, beta=1j)),
    "rlhf reference unnormalised": ("reference", lambda: ua.rlhf(POP, reference=np.ones(3))),
    "rlhf reference wrong length": ("reference", lambda: ua.rlhf(POP, reference=np.ones(2) / 2)),
    "rlhf reference negative": (
        "reference",
        lambda: ua.rlhf(POP, reference=np.array([-0.5, 1.0, 0.5])),
    ),
    "rlhf reference NaN": ("reference", lambda: ua.rlhf(POP, reference=np.array([math.nan] * 3))),
    "rlhf reference 2-D": ("reference", lambda: ua.rlhf(POP, reference=P2)),
    "rlhf reference string": ("reference", lambda: ua.rlhf(POP, reference="uniform")),
    "nash_md tau 0": ("tau", lambda: ua.nash_md(POP, tau=0)),
    "nash_md tau NaN": ("tau", lambda: ua.nash_md(POP, tau=math.nan)),
    "nash_md tau string": ("tau", lambda: ua.nash_md(POP, tau="0.1")),
    "maximal_lottery 1-D": ("pairwise", lambda: ua.maximal_lottery(np.ones(3))),
    "maximal_lottery not square": ("pairwise", lambda: ua.maximal_lottery(np.ones((2, 3)))),
    "maximal_lottery NaN": ("pairwise", lambda: ua.maximal_lottery(np.full((2, 2), math.nan))),
    "maximal_lottery strings": ("pairwise", lambda: ua.maximal_lottery(np.array([["a"]]))),
    "maximal_lottery approximate wrong length": (
        "approximate",
        lambda: ua.maximal_lottery(np.full((2, 2), 0.5), np.ones(3) / 3),
    ),
    "bradley_terry_scores NaN": (
        "pairwise",
        lambda: ua.bradley_terry_scores(np.full((2, 2), math.nan)),
    ),
    "bradley_terry_scores not square": (
        "pairwise",
        lambda: ua.bradley_terry_scores(np.ones((3, 2))),
    ),
}


@pytest.mark.parametrize("name", list(BAD_BASELINE_CALLS))
def test_bad_baseline_arguments_are_rejected(name):
    argument, call = BAD_BASELINE_CALLS[name]
    rejects(call, argument)


@pytest.mark.parametrize(
    "utilities",
    [np.zeros((2, 3)), np.array([[2.0, 1.0, 0.0], [2.0, 0.0, 1.0]])],
    ids=["all tied", "condorcet winner"],
)
def test_nlhf_and_rlhf_return_certified_policies(utilities):
    pop = ua.RankingPopulation(utilities)
    lottery = ua.nlhf(pop)
    assert_simplex(lottery)
    assert float(ua.exploitability(pop, lottery, 1)) <= 1e-9  # the k = 1 equilibrium
    for beta in (1.0, np.float32(2.0), 1e-320, math.inf):
        assert_simplex(ua.rlhf(pop, beta=beta))


# --------------------------------------------------------------------------- PrefLib text

#: Malformed PrefLib content; each parses with ``source="votes.toi"`` to a ValueError.
BAD_PREFLIB = {
    "empty text": "",
    "header only": "# NUMBER ALTERNATIVES: 3\n",
    "no colon": "1,2,3\n",
    "count not an integer": "x: 1,2,3\n",
    "count zero": "0: 1,2,3\n",
    "count negative": "-2: 1,2,3\n",
    "count a float": "1.5: 1,2,3\n",
    "count above int64": f"{10**30}: 1,2\n",
    "counts summing past int64": f"{2**62}: 1\n{2**62}: 1\n{2**62}: 1\n",
    "count of 5000 digits": "9" * 5000 + ": 1\n",
    "empty count": ": 1\n",
    "duplicated alternative": "1: 1,1,2\n",
    "duplicated alternative in a tie": "1: 1,{2,1}\n",
    "alternative 0": "1: 0,1\n",
    "negative alternative": "1: -1,1\n",
    "alternative out of declared range": "# NUMBER ALTERNATIVES: 2\n1: 1,2,3\n",
    "alternative id 10**12 (no header)": f"1: 1,{10**12}\n",
    "alternative id of 5000 digits": "1: " + "7" * 5000 + "\n",
    "trailing comma (truncated line)": "1: 1,2,\n",
    "unclosed brace (truncated line)": "1: {1,2\n",
    "stray closing brace": "1: }1,2{\n",
    "nested braces": "1: {1,{2}}\n",
    "empty braces": "1: {},1\n",
    "empty ranking": "1:\n",
    "NUL byte in a line": "1: 1\x00,2\n",
    "two colons": "1: 1:2\n",
    "NUMBER ALTERNATIVES 0": "# NUMBER ALTERNATIVES: 0\n1: 1\n",
    "NUMBER ALTERNATIVES not a number": "# NUMBER ALTERNATIVES: three\n1: 1\n",
    "NUMBER ALTERNATIVES 10**12": f"# NUMBER ALTERNATIVES: {10**12}\n1: 1\n",
    "NUMBER VOTERS disagrees": "# NUMBER VOTERS: 5\n1: 1,2\n1: 2,1\n",
    "NUMBER VOTERS not a number": "# NUMBER VOTERS: many\n1: 1\n",
    "unknown DATA TYPE": "# DATA TYPE: xyz\n1: 1,2\n",
    "DATA TYPE disagrees with the extension": "# DATA TYPE: soc\n1: 1,2\n",
    "alternative named twice": "# ALTERNATIVE NAME 1: a\n# ALTERNATIVE NAME 1: b\n1: 1\n",
    "alternative name beyond the count": (
        "# NUMBER ALTERNATIVES: 1\n# ALTERNATIVE NAME 2: b\n1: 1\n"
    ),
    "alternative name 0": "# ALTERNATIVE NAME 0: a\n1: 1\n",
    # (300 lines over 10**6 alternatives now load, the never-ranked ones merged; see test_data)
    "declared alternatives over the limit": "# NUMBER ALTERNATIVES: 1000001\n1: 1\n",
}
#: Structural errors that only strict or complete data types have.
BAD_STRICT_PREFLIB = {
    "ties in strict (soc) data": ("x.soc", "1: {1,2}\n"),
    "incomplete order in complete (toc) data": ("x.toc", "# NUMBER ALTERNATIVES: 3\n1: 1,2\n"),
}
#: Arguments of parse_preflib that are not text / a source name.
BAD_PARSE_ARGUMENTS = {
    "text as bytes": ("text", lambda: ua.parse_preflib(b"1: 1,2\n", "x.soi")),
    "text None": ("text", lambda: ua.parse_preflib(None, "x.soi")),
    "source None": ("source", lambda: ua.parse_preflib("1: 1\n", None)),
    "source int": ("source", lambda: ua.parse_preflib("1: 1\n", 3)),
}
LINE_ERROR = re.compile(r"^(?P<source>[^:]+):(?P<line>\d+): \S")


def check_parse(text, source="votes.toi"):
    """parse_preflib's answer is a consistent PreflibData or a ValueError naming source[:line]."""
    try:
        data = ua.parse_preflib(text, source=source)
    except ValueError as err:
        message = str(err)
        assert message.startswith(source + ":"), message
        assert "\n" not in message and len(message) < 300, message
        match = LINE_ERROR.match(message)
        if match:
            assert 1 <= int(match["line"]) <= max(1, len(text.splitlines())), message
        return None
    m, n = data.utilities.shape
    assert m == len(data.counts) >= 1 and n == len(data.names) >= 1
    assert data.counts.dtype == np.int64 and np.all(data.counts > 0)
    assert np.all(np.isfinite(data.utilities)) and np.all(data.utilities >= 0)
    for row in data.utilities:  # groups G, G-1, ..., 1 and 0 for the unranked
        levels = np.unique(row[row > 0])
        np.testing.assert_array_equal(levels, np.arange(1, len(levels) + 1))
    return data


@pytest.mark.parametrize("name", list(BAD_PREFLIB))
def test_malformed_preflib_text_is_rejected_with_file_and_line(name):
    assert check_parse(BAD_PREFLIB[name]) is None


@pytest.mark.parametrize("name", list(BAD_STRICT_PREFLIB))
def test_structural_errors_of_strict_data_types(name):
    source, text = BAD_STRICT_PREFLIB[name]
    assert check_parse(text, source) is None


@pytest.mark.parametrize("name", list(BAD_PARSE_ARGUMENTS))
def test_parse_preflib_arguments(name):
    argument, call = BAD_PARSE_ARGUMENTS[name]
    rejects(call, argument)


TOKENS = ["1", "2", "3", "4", "0", "-1", "99", "x", "{", "}", ",", ",", ":", " ", "1.5", ""]


@fuzz(300)
@given(
    lines=st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["1", "2", "10", "0", "-3", "x", "", "1.5", str(2**63)]),
                st.lists(st.sampled_from(TOKENS), max_size=8).map("".join),
            ).map(lambda t: f"{t[0]}:{t[1]}"),
            st.sampled_from(
                [
                    "# NUMBER ALTERNATIVES: 3",
                    "# NUMBER ALTERNATIVES: 0",
                    "# NUMBER VOTERS: 4",
                    "# DATA TYPE: soi",
                    "# DATA TYPE: toc",
                    "# ALTERNATIVE NAME 2: two",
                    "# just a comment",
                ]
            ),
            st.text(max_size=10),
        ),
        max_size=6,
    ),
    source=st.sampled_from(["votes.soc", "votes.soi", "votes.toc", "votes.toi", "votes.txt"]),
)
def test_random_preflib_lines(lines, source):
    check_parse("\n".join(lines), source)


@fuzz(150)
@given(raw=st.binary(max_size=80))
def test_random_bytes_as_preflib(raw):
    check_parse(raw.decode("latin-1"))


NETFLIX_TEXT = NETFLIX.read_text(encoding="utf-8")


@fuzz(150)
@given(
    cut=st.integers(0, len(NETFLIX_TEXT)),
    insert=st.sampled_from(["", ",", "{", "}", "1", "3", "9", ":", "-", "\n", "x", "1,"]),
    where=st.integers(0, len(NETFLIX_TEXT)),
)
def test_mutated_netflix_file(cut, insert, where):
    text = NETFLIX_TEXT[:where] + insert + NETFLIX_TEXT[where:]
    check_parse(text[:cut] if cut < len(text) else text, "netflix.soc")


# --------------------------------------------------------------------------- files


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def write_npz(path, **arrays_):
    np.savez(path, **arrays_)
    return path


#: Bad data files: ``name -> make(folder) -> path``; load_population must say ValueError.
BAD_FILES = {
    "npz without keys": lambda d: write_npz(d / "a.npz"),
    "npz with both utilities and log_weights": lambda d: write_npz(
        d / "b.npz", utilities=np.eye(2), log_weights=np.eye(2)
    ),
    "npz with an unknown key": lambda d: write_npz(d / "c.npz", utilities=np.eye(2), x=1),
    "npz utilities 1-D": lambda d: write_npz(d / "d.npz", utilities=np.ones(3)),
    "npz utilities 3-D": lambda d: write_npz(d / "e.npz", utilities=np.ones((2, 2, 2))),
    "npz utilities empty": lambda d: write_npz(d / "f.npz", utilities=np.zeros((0, 3))),
    "npz utilities NaN": lambda d: write_npz(d / "g.npz", utilities=np.array([[math.nan, 1]])),
    "npz log_weights inf": lambda d: write_npz(d / "h.npz", log_weights=np.array([[math.inf]])),
    "npz utilities strings": lambda d: write_npz(d / "i.npz", utilities=np.array([["a"]])),
    "npz utilities complex": lambda d: write_npz(d / "j.npz", utilities=np.eye(2) + 1j),
    "npz utilities bool": lambda d: write_npz(d / "k.npz", utilities=np.eye(2, dtype=bool)),
    "npz utilities object (pickled)": lambda d: write_npz(
        d / "l.npz", utilities=np.array([[1, None]], dtype=object)
    ),
    "npz weights negative": lambda d: write_npz(
        d / "m.npz", utilities=np.eye(2), weights=np.array([1.0, -1.0])
    ),
    "npz weights wrong length": lambda d: write_npz(
        d / "n.npz", utilities=np.eye(2), weights=np.ones(3)
    ),
    "npz weights strings": lambda d: write_npz(
        d / "o.npz", utilities=np.eye(2), weights=np.array(["a", "b"])
    ),
    "npz names wrong length": lambda d: write_npz(
        d / "p.npz", utilities=np.eye(2), names=np.array(["a"])
    ),
    "npz names 0-d": lambda d: write_npz(d / "q.npz", utilities=np.eye(2), names=np.array("ab")),
    "npz names 2-D": lambda d: write_npz(
        d / "r.npz", utilities=np.eye(2), names=np.array([["a", "b"]])
    ),
    "npz of random bytes": lambda d: write_bytes(d / "s.npz", b"\x00garbage\xff" * 3),
    "empty npz file": lambda d: write_bytes(d / "t.npz", b""),
    "truncated npz": lambda d: write_bytes(
        d / "u.npz", write_npz(d / "u0.npz", utilities=np.eye(3)).read_bytes()[:60]
    ),
    "zip whose member is not .npy": lambda d: write_zip(d / "v.npz", "utilities.npy", b"no"),
    "a .npy array named .npz": lambda d: write_npy(d / "w.npz", np.eye(2)),
    "non-UTF-8 PrefLib file": lambda d: write_bytes(d / "x.soc", b"\xff\xfe1: 1\n"),
    "PrefLib file with an error on line 3": lambda d: write_bytes(
        d / "y.soi", b"# NUMBER ALTERNATIVES: 2\n1: 1\n1: 3\n"
    ),
    "unknown extension": lambda d: write_bytes(d / "z.csv", b"1,2\n"),
}


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def write_npy(path, array):
    with open(path, "wb") as handle:
        np.save(handle, array)
    return path


def write_zip(path, member, data):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
    return path


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_data_files_are_rejected_naming_the_file(name, scratch):
    path = BAD_FILES[name](scratch)
    rejects(lambda: ua.load_population(path), path.name)


#: Bad path / dtype arguments of the loaders.
BAD_LOADER_ARGUMENTS = {
    "path None": ("path", lambda: ua.load_population(None)),
    "path int": ("path", lambda: ua.load_preflib(3)),
    "dtype int": ("dtype", lambda: ua.load_preflib(NETFLIX, dtype=int)),
    "dtype complex": ("dtype", lambda: ua.load_population(NETFLIX, dtype=np.complex64)),
    "dtype nonsense": ("dtype", lambda: ua.load_dataset("netflix", dtype="abc")),
    "unknown data set": ("data set", lambda: ua.load_dataset("nope")),
    "data set name not a string": ("data set", lambda: ua.load_dataset(["sushi"])),
}


@pytest.mark.parametrize("name", list(BAD_LOADER_ARGUMENTS))
def test_bad_loader_arguments(name):
    argument, call = BAD_LOADER_ARGUMENTS[name]
    rejects(call, argument)


def test_missing_files_raise_file_not_found_naming_them(scratch):
    for path in (scratch / "nope.soc", scratch / "nope.npz", scratch):
        with pytest.raises((FileNotFoundError, ValueError), match=re.escape(path.name)):
            ua.load_population(path)


@fuzz(60)
@given(
    key=st.sampled_from(["utilities", "log_weights"]),
    values=arrays(max_rank=3),
    weights=st.one_of(st.none(), arrays(max_rank=2)),
)
def test_random_npz_archives(key, values, weights, scratch):
    path = scratch / "random.npz"
    extra = {} if weights is None else {"weights": weights}
    try:
        np.savez(path, **{key: values}, **extra)
    except ValueError:  # NumPy itself refuses some dtypes
        return
    pop = outcome(lambda: ua.load_population(path), path.name)
    if pop is not REJECTED:
        assert valid_matrix(values) and values.ndim == 2
        if weights is not None:
            assert weights.dtype.kind in REAL_KINDS and weights.shape == values.shape[:1]
            w = weights.astype(np.float64)
            assert np.all(np.isfinite(w)) and w.min() >= 0 and 0 < w.sum() < np.inf
        assert_probabilities(pop.weights)
        np.testing.assert_allclose(np.sum(pop.weights), 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- the CLI


def run_cli(argv):
    """``ualign argv`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_usage_error(argv, *fragments):
    code, out, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("ualign: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert str(fragment) in lines[0], (fragment, lines[0])


def cli_files(d):
    write_npz(d / "users.npz", utilities=U3)
    (d / "p.json").write_text(json.dumps(PI.tolist()))
    return d / "users.npz", d / "p.json"


#: Bad command lines: ``name -> argv(folder)`` and the fragments the error line must name.
BAD_COMMAND_LINES = {
    "solve --k 0": (lambda d, u, p: ["solve", u, "--k", "0", "--out", d / "o"], ["--k"]),
    "solve --k -3": (lambda d, u, p: ["solve", u, "--k", "-3", "--out", d / "o"], ["--k"]),
    "solve --k x": (lambda d, u, p: ["solve", u, "--k", "x", "--out", d / "o"], ["--k"]),
    "solve --k 1.5": (lambda d, u, p: ["solve", u, "--k", "1.5", "--out", d / "o"], ["--k"]),
    "solve --k 2**40": (
        lambda d, u, p: ["solve", u, "--k", 2**40, "--out", d / "o", "--quiet"],
        ["k", str(2**40)],
    ),
    "solve --steps 0": (
        lambda d, u, p: ["solve", u, "--k", "2", "--steps", "0", "--out", d / "o"],
        ["--steps"],
    ),
    "solve --tol nan": (
        lambda d, u, p: ["solve", u, "--k", "2", "--tol", "nan", "--out", d / "o"],
        ["--tol"],
    ),
    "solve --tol -1": (
        lambda d, u, p: ["solve", u, "--k", "2", "--tol", "-1", "--out", d / "o"],
        ["--tol"],
    ),
    "solve --method nope": (
        lambda d, u, p: ["solve", u, "--k", "2", "--method", "nope", "--out", d / "o"],
        ["--method", "nope"],
    ),
    "solve a missing file": (
        lambda d, u, p: ["solve", d / "missing.soc", "--k", "2", "--out", d / "o"],
        ["missing.soc"],
    ),
    "solve a directory": (
        lambda d, u, p: ["solve", d, "--k", "2", "--out", d / "o"],
        ["unknown data format"],
    ),
    "unknown subcommand": (lambda d, u, p: ["frobnicate"], ["frobnicate"]),
    "unknown option": (
        lambda d, u, p: ["solve", u, "--k", "2", "--out", d / "o", "--frob"],
        ["--frob"],
    ),
    "evaluate --k 0": (lambda d, u, p: ["evaluate", u, "--policy", p, "--k", "0"], ["--k"]),
    "evaluate --k 1--3": (lambda d, u, p: ["evaluate", u, "--policy", p, "--k", "1--3"], ["--k"]),
    "evaluate --ell x": (lambda d, u, p: ["evaluate", u, "--policy", p, "--ell", "x"], ["--ell"]),
    "evaluate --ell 10**6": (
        lambda d, u, p: ["evaluate", u, "--policy", p, "--k", "1", "--ell", str(10**6)],
        ["--ell", "at most"],
    ),
    "evaluate a missing policy": (
        lambda d, u, p: ["evaluate", u, "--policy", d / "none.json"],
        ["--policy"],
    ),
    "demo --k-max 0": (lambda d, u, p: ["demo", "--k-max", "0"], ["--k-max"]),
}
#: Bad files handed to the CLI: the error must name the file.
BAD_CLI_DATA = ["npz of random bytes", "empty npz file", "truncated npz", "npz utilities complex"]
BAD_CLI_DATA += ["non-UTF-8 PrefLib file", "PrefLib file with an error on line 3"]
BAD_CLI_DATA += ["unknown extension"]
#: Bad policy files for ``ualign evaluate``: (file name, content).
BAD_CLI_POLICIES = {
    "JSON syntax error": ("a.json", b"{not json"),
    "JSON without a policy key": ("b.json", b'{"x": 1}'),
    "JSON string": ("c.json", b'"abc"'),
    "JSON null": ("d.json", b"null"),
    "JSON nested list": ("e.json", b"[[0.2, 0.3, 0.5]]"),
    "JSON ragged list": ("f.json", b"[0.2, [0.3], 0.5]"),
    "JSON wrong length": ("g.json", b"[0.5, 0.5]"),
    "JSON NaN": ("h.json", b"[NaN, 0.5, 0.5]"),
    "JSON negative entry": ("i.json", b"[-0.5, 1.0, 0.5]"),
    "JSON unnormalised": ("j.json", b"[1, 1, 1]"),
    "JSON overflowing number": ("k.json", b"[1e400, 0, 0]"),
    "random bytes .npy": ("l.npy", b"\x93NUMPY garbage"),
    "random bytes .npz": ("m.npz", b"garbage"),
    "npz without a policy key": ("n.npz", None),
    "unsupported extension": ("o.txt", b"0.2 0.3 0.5"),
}


@pytest.mark.parametrize("name", list(BAD_COMMAND_LINES))
def test_cli_bad_options_exit_2_with_one_line(name, scratch):
    users, policy = cli_files(scratch)
    argv, fragments = BAD_COMMAND_LINES[name]
    assert_usage_error(argv(scratch, users, policy), *fragments)


@pytest.mark.parametrize("name", BAD_CLI_DATA)
def test_cli_bad_data_files_exit_2_naming_the_file(name, scratch):
    path = BAD_FILES[name](scratch)
    assert_usage_error(["solve", path, "--k", "2", "--out", scratch / "o"], path.name)
    assert not (scratch / "o").exists()


@pytest.mark.parametrize("name", list(BAD_CLI_POLICIES))
def test_cli_bad_policy_files_exit_2_naming_the_option(name, scratch):
    users, _ = cli_files(scratch)
    file_name, content = BAD_CLI_POLICIES[name]
    path = scratch / file_name
    if content is None:
        write_npz(path, weights=PI)
    else:
        path.write_bytes(content)
    assert_usage_error(["evaluate", users, "--policy", path, "--k", "1"], "--policy")


# --------------------------------------------------------------------------- the catalogue

NON_REAL_DTYPES = tuple(d for d in DTYPES if np.dtype(d).kind not in REAL_KINDS)
SHAPE_DEFECTS = (
    "too few axes (rank 0 or 1 utilities / log-weights, rank 0 weights)",
    "a side of length 0 (empty array)",
    "weights whose shape is not the population's (*batch, m)",
)
RANDOM_INPUTS = (
    "random method names (hypothesis text)",
    "random PrefLib lines: counts, ids, braces, commas, headers, random text",
    "random bytes as a PrefLib file",
    "the netflix PrefLib file cut at a random offset",
    "the netflix PrefLib file with a random character inserted",
    "random .npz archives (random rank, dtype, special values, weights)",
)
MISSING_PATHS = ("a .soc path that does not exist", "a .npz path that does not exist", "a folder")


def catalogue():
    """Every distinct bad input this module tries, by section (the docstring lists them)."""
    return [
        ("Counts (k, ell, num_players, steps, max_opponents, ...)", list(BAD_COUNTS)),
        ("Array dtypes", [f"dtype {d}" for d in NON_REAL_DTYPES]),
        ("Array values", [f"value {v}" for v in SPECIALS]),
        ("Array shapes", list(SHAPE_DEFECTS)),
        ("Weights", [f"weights: {w}" for w in BAD_WEIGHTS] + [f"names: {w}" for w in BAD_NAMES]),
        ("Policies", list(BAD_POLICIES)),
        ("DenseGame", list(BAD_DENSE) + list(DENSE_MISUSE)),
        ("Prompt (batch) axes", list(BAD_BATCHES)),
        ("Not a population", list(BAD_POPULATIONS)),
        ("Too big to compute", list(TOO_BIG)),
        ("solve options", list(BAD_SOLVER_OPTIONS)),
        ("Baselines", list(BAD_BASELINE_CALLS)),
        ("PrefLib text", list(BAD_PREFLIB) + list(BAD_STRICT_PREFLIB) + list(BAD_PARSE_ARGUMENTS)),
        ("Files and loaders", list(BAD_FILES) + list(BAD_LOADER_ARGUMENTS) + list(MISSING_PATHS)),
        ("Random inputs", list(RANDOM_INPUTS)),
        ("The ualign CLI", list(BAD_COMMAND_LINES) + [f"--policy: {p}" for p in BAD_CLI_POLICIES]),
        ("Bugs found and fixed (tests at the end)", list(KNOWN_BUG_INPUTS) + list(KNOWN_CLI_BUGS)),
    ]


def test_the_docstring_lists_every_bad_input():
    items = [name for _, names in catalogue() for name in names]
    numbered = re.findall(r"^ *(\d+)\. (.*)$", __doc__, flags=re.MULTILINE)
    assert [int(i) for i, _ in numbered] == list(range(1, len(items) + 1))
    assert [text for _, text in numbered] == items
    assert f"{len(items)} distinct bad inputs" in __doc__


# --------------------------------------------------------------------------- bugs the fuzz found
# Each test below failed when the fuzz suite was written and passes since its fix.


def test_plackett_luce_with_a_wide_log_weight_range():
    """Spreads the dtype can hold give correct payoffs (with ``max_spread``, more quadrature
    nodes); wider ones are refused by name (they once gave NaN from ~745 in float64 and ~100 in
    float32), and so are spreads past the default ``max_spread`` without it."""
    for spread, dtype in ((300.0, np.float64), (690.0, np.float64), (70.0, np.float32)):
        wide = np.array([[0.0, spread, spread / 2]], dtype)
        pop = ua.PlackettLucePopulation(wide, max_spread=max(spread, 60.0))
        u = ua.response_payoffs(pop, PI.astype(dtype), 2)
        check_payoffs(None, None, PI, 2, np.asarray(u, np.float64), atol=1e-5)
    for spread, dtype in ((800.0, np.float64), (120.0, np.float32), (300.0, np.float64)):
        rejects(
            lambda s=spread, d=dtype: ua.PlackettLucePopulation(np.array([[0.0, s, s / 2]], d)),
            "log_weights spread",
        )


def test_fixed_names_that_are_not_a_sequence():
    """populations.py (_check_names): ``RankingPopulation(U, names=3)`` raises a TypeError."""
    rejects(lambda: ua.RankingPopulation(U3, names=3), "names")


def test_fixed_win_tensor_with_a_huge_number_of_players():
    """payoffs.py (win_tensor): ``win_tensor(pop, 10**6)`` fails formatting n**10**6.

    The ValueError says "Exceeds the limit (4300 digits) for integer string conversion" and
    does not name num_players; with num_players = 2**31 - 1 computing n**num_players hangs.
    """
    rejects(lambda: ua.win_tensor(POP, 10**6), "num_players")


def test_fixed_count_form_payoffs_does_not_check_the_policy():
    """payoffs.py (count_form_payoffs): an unnormalised policy gives payoffs above 1 silently,
    a policy of the wrong length raises a TypeError from inside JAX."""
    form = ua.count_form(POP, 2)
    rejects(lambda: ua.count_form_payoffs(form, np.ones(3)), "policy")
    rejects(lambda: ua.count_form_payoffs(form, np.ones(2) / 2), "policy")


def test_fixed_solve_with_a_huge_kl_weight():
    """solve.py / dynamics.py (kl_regularised): ``solve(pop, 2, steps=5, tau=1e308, tol=1e-3)``
    reports outcome 'successful' with the policy [0, 0, 0]: an all-zero iterate has payoffs 0,
    "exploitability" -1/3 <= tol, and is finite (without tol the outcome is 'nonfinite')."""
    sol = outcome(lambda: ua.solve(POP, 2, steps=5, tau=1e308, tol=1e-3), "tau")
    if sol is not REJECTED:
        assert sol.outcome_name == "nonfinite" or (
            np.all(np.isfinite(np.asarray(sol.policy)))
            and abs(float(np.sum(sol.policy)) - 1) < 1e-9
        ), (sol.outcome_name, sol.policy)


def test_fixed_solve_rejects_a_numpy_float32_tol():
    """solve.py: ``solve(pop, 2, tol=np.float32(0.5))`` raises "tol must be a positive number";
    float and np.float64 are accepted."""
    sol = ua.solve(POP, 2, method="optimistic_gradient", steps=5, tol=np.float32(0.5))
    assert_simplex(sol.policy)


def test_fixed_subnormal_utilities():
    """The sorted engines (ranking.py, sort_orders) vs win_factors: utilities [[5e-324, 0.0]].

    The sort behind response_payoffs runs in NumPy, which keeps 5e-324 > 0 (payoffs [0.75, 0.25]
    against [0.5, 0.5]); win_tensor and count_form compare in XLA, which flushes subnormals to
    zero on CPU and calls it a tie ([0.5, 0.5]). The constructor flushes them, so all agree.
    """
    pop = ua.RankingPopulation(np.array([[5e-324, 0.0]]))
    half = np.array([0.5, 0.5])
    tensor = np.asarray(ua.win_tensor(pop, 2))
    np.testing.assert_allclose(ua.response_payoffs(pop, half, 1), tensor @ half, atol=1e-12)


#: Bad (or edge) inputs of the known-bug tests above, for the count in the docstring.
KNOWN_BUG_INPUTS = (
    "Plackett-Luce log-weights spread over >= ~745 (float64) or >= ~100 (float32)",
    "names=3 (not a sequence)",
    "win_tensor with num_players = 10**6",
    "count_form_payoffs with an unnormalised policy",
    "count_form_payoffs with a policy of the wrong length",
    "solve with tau = 1e308 and a tol",
    "utilities that differ only by a subnormal (5e-324 vs 0)",
)

KNOWN_CLI_BUGS = {
    "--out is an existing file (error comes after solving, below a progress line)": lambda d, u: [
        "solve",
        u,
        "--k",
        "2",
        "--steps",
        "5",
        "--out",
        d / "p.json",
    ],
    "--out inside a file (FileExistsError)": lambda d, u: [
        "solve",
        u,
        "--k",
        "2",
        "--steps",
        "5",
        "--quiet",
        "--out",
        d / "p.json" / "sub",
    ],
    "empty .npy policy (EOFError)": lambda d, u: ["evaluate", u, "--policy", d / "e.npy"],
    "complex .npy policy (imaginary part dropped)": lambda d, u: [
        "evaluate",
        u,
        "--policy",
        d / "c.npy",
        "--k",
        "1",
    ],
    "JSON booleans as a policy": lambda d, u: ["evaluate", u, "--policy", d / "b.json", "--k", "1"],
    "--k 1-100000000000 (MemoryError)": lambda d, u: [
        "evaluate",
        u,
        "--policy",
        d / "p.json",
        "--k",
        "1-100000000000",
    ],
}


@pytest.mark.parametrize("name", list(KNOWN_CLI_BUGS))
def test_fixed_cli(name, scratch):
    """cli.py: bad input that does not end in exit code 2 and one line."""
    users, _ = cli_files(scratch)
    (scratch / "e.npy").write_bytes(b"")
    write_npy(scratch / "c.npy", PI + 0.5j)
    (scratch / "b.json").write_text("[true, false, false]")
    try:
        assert_usage_error(KNOWN_CLI_BUGS[name](scratch, users))
    except (AssertionError, OSError, EOFError, MemoryError) as err:
        pytest.fail(f"{name}: {type(err).__name__}: {err}")
