"""Catalog benchmark (hub side): a 100,000-product CSV import beside a raw COPY of the same rows, and the
time to publish the catalog to its JetStream stream.

    python -m bench.catalog [--products 100000]
"""

from __future__ import annotations

from hub.catalog.barcodes import gs1_check_digit

HEADER = "product,product_name,tax_class,attributes,sku,barcodes,price,price_overrides\n"


def ean13(number: int) -> str:
    body = f"20{number:010d}"
    return body + str(gs1_check_digit(body))


def synthetic_csv(products: int, *, start: int = 0) -> bytes:
    """`products` products of one variant each, one EAN-13 each, every tenth with a price for region south."""
    lines = [HEADER]
    for n in range(start, start + products):
        override = f"region:south={n % 50}.49" if n % 10 == 0 else ""
        lines.append(f"P{n},Product number {n},{'reduced' if n % 3 == 0 else 'standard'},,SKU{n},{ean13(n)},"
                     f"{n % 90 + 1}.{n % 100:02d},{override}\n")
    return "".join(lines).encode()
