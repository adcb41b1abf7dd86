"""dots.ocr's HTML tables as Markdown tables: spans padded, pipes escaped, non-tables left alone."""

from gateway.mistral_ocr.tables import html_table_markdown


def test_a_table_with_a_span_keeps_its_column_count() -> None:
    html = (
        "<table><tr><th>Item</th><th colspan='2'>Price | VAT</th></tr><tr><td>Tea</td><td>2<br/>EUR</td></tr></table>"
    )
    assert html_table_markdown(html) == "| Item | Price \\| VAT |  |\n|---|---|---|\n| Tea | 2 EUR |  |"


def test_text_without_a_table_is_unchanged() -> None:
    assert html_table_markdown("no table here") == "no table here"
