"""The code as a picture: segno draws it (terminal, PNG, SVG), zxing-cpp reads it back, also from a 'photo'."""
from __future__ import annotations

import base64
import random
import xml.etree.ElementTree as ET

import pytest
import zxingcpp
from PIL import Image, ImageFilter

from ykt_qr.render import save_png, save_svg, symbol, terminal_text
from ykt_qr.scan import ScanError, code_from_text, decode_image


def test_the_symbol_is_byte_mode_level_m_version_14(real_code):
    qr = symbol(real_code)
    assert (qr.mode, qr.error, qr.version) == ("byte", "M", 14)
    assert symbol(real_code).matrix == qr.matrix            # one code, one symbol


def test_png_round_trip(tmp_path, real_code):
    path = tmp_path / "code.png"
    save_png(real_code, path, scale=3)
    with Image.open(path) as image:
        assert image.size == (3 * (73 + 8),) * 2           # version 14: 73 modules, 4-module quiet zone
    assert decode_image(path) == real_code


def _photograph(png, out, rnd: random.Random) -> None:
    """What a phone camera makes of a screen: scaled, turned a little, grey, noisy, blurred, JPEG."""
    with Image.open(png) as image:
        w, h = image.size
        photo = image.convert("RGB").resize((int(w * 1.37), int(h * 1.37)), Image.BILINEAR)
    photo = photo.rotate(6.5, expand=True, fillcolor=(205, 210, 200), resample=Image.BICUBIC)
    pixels = photo.load()
    for _ in range(photo.size[0] * photo.size[1] // 25):
        x, y = rnd.randrange(photo.size[0]), rnd.randrange(photo.size[1])
        v = rnd.randrange(40, 220)
        pixels[x, y] = (v, v, v)
    photo.filter(ImageFilter.GaussianBlur(0.8)).save(out, quality=55)


def test_a_degraded_photo_still_reads(tmp_path, real_code):
    png, photo = tmp_path / "code.png", tmp_path / "photo.jpg"
    save_png(real_code, png, scale=4)
    _photograph(png, photo, random.Random(20261124))
    assert decode_image(photo) == real_code
    with Image.open(photo) as image:                       # and it is really degraded: not the clean raster
        with Image.open(png) as clean:
            assert image.size != clean.size


def test_svg_is_an_svg_document(tmp_path, real_code):
    path = tmp_path / "code.svg"
    save_svg(real_code, path, scale=2)
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.attrib["width"] == str(2 * 81) and root.find("{http://www.w3.org/2000/svg}path") is not None


def test_terminal_text_has_one_line_per_two_module_rows(real_code):
    lines = terminal_text(real_code).splitlines()
    assert len(lines) == (73 + 8 + 1) // 2
    assert all(len(line) == 73 + 8 for line in lines)
    assert set("".join(lines)) <= {" ", "█", "▀", "▄"}


def test_a_base64_symbol_reads_as_the_raw_code(tmp_path, real_code):
    path = tmp_path / "b64.png"
    import segno
    segno.make_qr(base64.b64encode(real_code).decode(), error="m").save(str(path), scale=3)
    assert decode_image(path) == real_code


def test_no_code_in_the_picture(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(path)
    with pytest.raises(ScanError, match=r"blank\.png: no QR code found in the picture"):
        decode_image(path)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ScanError, match=r"text\.png: not an image Pillow can read"):
        decode_image(tmp_path / "text.png")
    with pytest.raises(ScanError, match=r"missing\.png: no such image file"):
        decode_image(tmp_path / "missing.png")


def test_code_text_is_hex_or_base64(real_code):
    assert code_from_text(real_code.hex()) == real_code
    assert code_from_text(" ".join(real_code.hex()[i:i + 8] for i in range(0, 664, 8))) == real_code
    assert code_from_text(base64.b64encode(real_code).decode()) == real_code
    with pytest.raises(ScanError, match="CODE: neither hex nor base64"):
        code_from_text("xyz!")


def test_the_decoder_is_zxing_cpp():
    """The decoder the README names: a missing zxing-cpp fails here (and at import), it is never skipped."""
    assert zxingcpp.BarcodeFormat.QRCode
