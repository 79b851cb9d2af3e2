"""jsontext must read and write exactly what the json module does."""

import json

import pytest

from minirunc import jsontext

DOCS = [
    {},
    [],
    {"a": [1, 2.5, -3e-7, True, False, None], "b": {"c": "d\u00e9\n\t\"\\"}, "e": []},
    {"ociVersion": "1.0.2", "process": {"args": ["sh", "-c", "echo \u2603"], "env": []},
     "annotations": {}, "n": 10**20, "f": 1.0},
    "plain",
    [[[]], {"x": {}}],
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_dumps_matches_json(doc, indent):
    expected = (json.dumps(doc, indent=indent) if indent is not None
                else json.dumps(doc, separators=(",", ":")))
    assert jsontext.dumps(doc, indent=indent) == expected


@pytest.mark.parametrize("doc", DOCS)
def test_loads_round_trip(doc):
    text = json.dumps(doc, indent=2)
    assert jsontext.loads("  \n" + text + "\n ") == doc
    assert jsontext.loads(text.encode()) == doc


@pytest.mark.parametrize("bad", ['{"a": 1,}', '{"a": 1} x', "", "   ", '{"a": [1, 2}', "nul"])
def test_loads_errors_are_json_errors_with_position(bad):
    with pytest.raises(json.JSONDecodeError) as info:
        jsontext.loads(bad)
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(bad)
    assert str(info.value) == str(reference.value)


def test_nonfinite_numbers():
    assert jsontext.dumps([float("nan"), float("inf")]) == "[NaN,Infinity]"
    value = jsontext.loads("[-Infinity]")
    assert value == [float("-inf")]
