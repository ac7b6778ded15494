import pytest

from dasktrain._names import TableName, identifier
from dasktrain.errors import InvalidNameError


@pytest.mark.parametrize(
    "bad",
    ['my"table', "t; DROP TABLE x", "my table", "1abc", "", "a.b.c", "a.", "x" * 64, "tab\u00e9", None],
)
def test_bad_table_names_are_refused_with_the_name_in_the_message(bad):
    with pytest.raises(InvalidNameError) as info:
        TableName.parse(bad)
    assert repr(bad)[:20].strip("'") in str(info.value) or bad in (None, "a.b.c", "a.")


def test_names_fold_to_lower_case_and_keep_the_schema():
    name = TableName.parse("Analytics.Images")
    assert (name.schema, name.name) == ("analytics", "images")
    assert str(name) == "analytics.images"
    assert name.sibling("_summary") == TableName("analytics", "images_summary")


def test_identifier_message_says_what_is_expected():
    with pytest.raises(InvalidNameError, match="plain SQL identifier"):
        identifier("x'; --")
