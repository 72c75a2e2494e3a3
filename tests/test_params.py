"""The flat parameter dict's helpers (minivrnn/params.py)."""
from minivrnn.params import add_prefixed, sub


def test_sub_follows_the_dict_it_is_given():
    # sub() remembers which names sit under a prefix for a given set of keys: new keys, or new values under
    # the same keys, must still come out right.
    p = {"a.x": 1, "a.y": 2, "b.x": 3, "ab.x": 6}
    assert sub(p, "a.") == {"x": 1, "y": 2}
    p["a.z"] = 4
    assert sub(p, "a.") == {"x": 1, "y": 2, "z": 4}
    p["a.x"] = 5
    assert sub(p, "a.") == {"x": 5, "y": 2, "z": 4}
    assert sub(p, "c.") == {}


def test_add_prefixed_sums_a_name_seen_twice():
    grads = add_prefixed({}, "enc.", {"W": 1.0})
    assert add_prefixed(grads, "enc.", {"W": 2.0, "b": 3.0}) == {"enc.W": 3.0, "enc.b": 3.0}
