"""Pass 1's chunks: cut anywhere, they split a file's lines exactly, each line once, with its number."""
from __future__ import annotations

import io

from hypothesis import given, settings, strategies as st

from clearing.jobs import FileJob
from clearing.partition import _chunk
from clearing.verify import _cuts, _sha256

lines_st = st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")), max_size=30)


def _lines_of_chunks(path, cuts, header: bool) -> list[tuple[int, bytes]]:
    """Every (number, line) the chunks read, as `_read_file` walks them."""
    f = FileJob(1, str(path), "csv" if header else "jsonl", cuts)
    got = []
    for k in range(len(cuts)):
        with open(path, "rb") as fh:
            if header:
                fh.readline()
            start, end, number = _chunk(fh, f, k, 2 if header else 1)
            assert fh.tell() == start
            at = start
            for number, line in enumerate(fh, number):
                if at >= end:
                    break
                at += len(line)
                got.append((number, line))
    return got


@settings(max_examples=300, deadline=None)
@given(lines_st, st.booleans(), st.booleans(), st.integers(1, 64))
def test_chunks_read_every_line_once_with_its_number(tmp_path_factory, lines, header, trailing, target):
    data = (b"h,e,a,d\n" if header else b"") + b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    path = tmp_path_factory.mktemp("chunks") / "f"
    path.write_bytes(data)
    digest, size, cuts = _sha256(path, _cuts(len(data), target))
    assert size == len(data)
    assert [c for c, _ in cuts] == _cuts(len(data), target)
    assert all(feeds == data[:at].count(b"\n") for at, feeds in cuts)
    expected = list(enumerate(io.BytesIO(data).readlines(), 1))[1 if header else 0:]
    assert _lines_of_chunks(path, cuts, header) == expected


def test_hash_and_counts_over_blocks_of_a_megabyte(tmp_path):
    """Cuts in different 1 MiB reads of the hash count every line feed before them."""
    import hashlib

    data = b"".join(b"%d\n" % i for i in range(600_000))       # about 4 MB
    path = tmp_path / "big"
    path.write_bytes(data)

    digest, size, cuts = _sha256(path, _cuts(len(data), 700_000))
    assert digest == hashlib.sha256(data).hexdigest() and size == len(data)
    assert len(cuts) == 6 and all(feeds == data[:at].count(b"\n") for at, feeds in cuts)
