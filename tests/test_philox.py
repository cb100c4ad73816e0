from pyconvnet import _C

# Random123's known-answer vectors for philox4x32 with 10 rounds (kat_vectors).
KAT = [
    ((0, 0, 0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 6, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def test_philox_known_answers():
    for args, expected in KAT:
        assert _C.philox4x32(*args) == expected


def test_philox_words_are_blocks_in_order():
    words = _C.philox_words(7, 1, 0, 8)
    assert tuple(words[:4]) == _C.philox4x32(0, 0, 1, 0, 7, 0)
    assert tuple(words[4:]) == _C.philox4x32(1, 0, 1, 0, 7, 0)
    assert list(_C.philox_words(7, 1, 5, 3)) == list(words[5:8])
