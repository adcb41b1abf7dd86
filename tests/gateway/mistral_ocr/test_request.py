"""Mistral's 0-based pages become the gateway's 1-based selection; options are typed strictly."""

import pytest

from gateway.errors import InvalidRequest
from gateway.mistral_ocr.request import one_based_pages, read_mistral_options


@pytest.mark.parametrize(
    ("pages", "spec"),
    [(None, None), ([0], "1"), ([3, 0, 3], "1,4"), ("0", "1"), ("0,2-4", "1,3-5"), (" 1 - 2 ", "2-3")],
)
def test_pages_are_shifted_to_one_based(pages: list[int] | str | None, spec: str | None) -> None:
    assert one_based_pages(pages) == spec


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"pages": "1-"}, "pages"), ({"extract_header": 1}, "extract_header"), ({"image_min_size": -1}, "image_min_size")],
)
def test_wrong_types_name_the_field(fields: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        read_mistral_options(fields)
    assert caught.value.param == param
