"""OTSL to HTML: spans, ragged rows, escaping, and text around the table left alone."""

from __future__ import annotations

from gateway.documents.output.otsl import has_otsl, otsl_to_html, replace_otsl_tables


def test_a_two_dimensional_span() -> None:
    raw = "<fcel>A<lcel><fcel>B<nl><ucel><xcel><fcel>C<nl>"
    assert otsl_to_html(raw) == (
        '<table><tr><td colspan="2" rowspan="2">A</td><td>B</td></tr><tr><td>C</td></tr></table>'
    )


def test_ragged_rows_are_padded_and_text_is_escaped() -> None:
    assert otsl_to_html("<fcel>x & y<fcel><b>z</b><nl><fcel>only one") == (
        "<table><tr><td>x &amp; y</td><td>&lt;b&gt;z&lt;/b&gt;</td></tr><tr><td>only one</td><td></td></tr></table>"
    )


def test_text_without_otsl_is_untouched() -> None:
    text = "A paragraph with <table><tr><td>html</td></tr></table> and an <nl> lookalike."
    assert not has_otsl(text)
    assert replace_otsl_tables(text) == text


def test_an_empty_table_is_nothing() -> None:
    assert otsl_to_html("<nl><nl>") == ""
