"""drivers.device_text: any text becomes bytes a printer or display prints, never obeys."""

from __future__ import annotations

import pytest

from drivers.device_text import encode, transliterate

CODECS = ["cp437", "cp858"]  # the customer display's, the receipt printer's


@pytest.mark.parametrize("codec", CODECS)
def test_no_text_encodes_to_a_command_byte(codec: str) -> None:
    every_character = "".join(map(chr, range(0x30000))) + "\U000e0001\U000f0000\U0010ffff"
    data = encode(every_character, codec)
    assert not [byte for byte in data if byte < 0x20 or byte == 0x7F]


@pytest.mark.parametrize(("text", "cp437", "cp858"), [
    ("x\x1bp0\x19\x19\x1dV0y", "x?p0???V0y", "x?p0???V0y"),  # ESC p (drawer), GS V (cut): visible, not obeyed
    ("a\tb\r\nc\x85d\u2028e\u2029f", "a b  c d e f", "a b  c d e f"),  # one line stays one line
    ("\x00\x7f\x80\x9f\ud800\ue000\u0378", "???????", "???????"),  # controls, surrogate, private, unassigned
    ("so\u00adft\u200b\u202eevil\u202c\ufeff", "softevil", "softevil"),  # invisible format characters dropped
    ("3,50 € × Ø", "3,50 EUR x O", "3,50 € × Ø"),  # kept where the code page has them
    ("ﬁne Ｆｏｏ ẞ Ōsaka 日本", "fine Foo SS Osaka ??", "fine Foo SS Osaka ??"),
    ("e\u0301\u00a0!", "é !", "é !"),  # composed first; a no-break space is a space
])
def test_text_is_kept_replaced_or_dropped(text: str, cp437: str, cp858: str) -> None:
    assert transliterate(text, "cp437") == cp437
    assert transliterate(text, "cp858") == cp858
    assert encode(text, "cp858") == cp858.encode("cp858")
