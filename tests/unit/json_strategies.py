"""Hypothesis strategies for daemon.json-like data, shared by the property tests."""

from hypothesis import strategies as st

KEYS = st.text(alphabet='abcdefgh-', min_size=1, max_size=4)
SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=6) \
    | st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
JSON_OBJECTS = st.dictionaries(KEYS, JSON_VALUES, max_size=6)
