import pytest

from hcdc.archive.identifiers import IdentifierError, parse_publisher_did, publisher_did


def test_round_trip():
    did = publisher_did("hcdc.example.org", "product", 42)
    assert did == "ivo://hcdc.example.org/product?42"
    parsed = parse_publisher_did(did, authority="hcdc.example.org")
    assert (parsed.kind, parsed.key) == ("product", 42)
    assert str(parsed) == did


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "http://x/product?1",
        "ivo://x/product?",
        "ivo://x/product?1;DROP",
        "ivo://x/table?1",
        "ivo://x?1",
        "ivo:///product?1",
        "ivo://x/product?-1",
    ],
)
def test_refuses_what_is_not_ours(bad):
    with pytest.raises(IdentifierError):
        parse_publisher_did(bad)


def test_refuses_another_authority_and_bad_kinds():
    with pytest.raises(IdentifierError, match="authority"):
        parse_publisher_did("ivo://other.org/file?3", authority="hcdc.example.org")
    with pytest.raises(IdentifierError):
        publisher_did("a/b", "file", 1)
    with pytest.raises(IdentifierError):
        publisher_did("a", "dataset", 1)
