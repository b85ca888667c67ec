from tokenizers import normalizers

from lextune.models.charsmap import build_precompiled_charsmap


def normalize(mapping: dict[int, str], text: str) -> str:
    return normalizers.Precompiled(build_precompiled_charsmap(mapping)).normalize_str(text)


def test_single_codepoint_replacements():
    mapping = {ord("Ａ"): "A", ord("\t"): " ", 0x01: "", ord("㈜"): "(주)", ord("①"): "1"}
    assert normalize(mapping, "Ａ\tb\x01㈜①") == "A b(주)1"


def test_unmapped_text_is_untouched():
    mapping = {ord("Ａ"): "A"}
    assert normalize(mapping, "민법 제750조") == "민법 제750조"


def test_shared_prefix_bytes_do_not_confuse_the_trie():
    # Hangul syllables share UTF-8 lead bytes; only the mapped ones may change.
    mapping = {ord("가"): "A", ord("각"): "B", ord("갂"): ""}
    assert normalize(mapping, "가각갂간") == "AB간"


def test_many_entries_round_trip():
    mapping = {cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)}  # fullwidth ASCII
    text = "".join(chr(cp) for cp in range(0xFF01, 0xFF5F))
    assert normalize(mapping, text) == "".join(chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F))
