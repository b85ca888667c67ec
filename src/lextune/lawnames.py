"""Law names as citations and queries write them: normalised lookup keys, common short names (약칭) and former
names. Below every stage: ingest resolves citations with it, retrieval pipelines route queries by it."""

from __future__ import annotations

import re
import unicodedata

# Middle dots as written in law names (after NFKC, which turns the Hangul ㆍ into U+119E).
_MIDDLE_DOTS = re.compile("[\u00b7\u119e\u318d\u2027\u2022\u30fb\uff65\u2219\u22c5]")

# Names that citations use for a law whose corpus name differs: the constitution and common short names.
LAW_ALIASES: dict[str, str] = {
    "헌법": "대한민국헌법",
    "자본시장법": "자본시장과 금융투자업에 관한 법률",
    "특정경제범죄법": "특정경제범죄 가중처벌 등에 관한 법률",
    "특정범죄가중법": "특정범죄 가중처벌 등에 관한 법률",
    "성폭력처벌법": "성폭력범죄의 처벌 등에 관한 특례법",
    "청소년성보호법": "아동ㆍ청소년의 성보호에 관한 법률",
    "채무자회생법": "채무자 회생 및 파산에 관한 법률",
    "국토계획법": "국토의 계획 및 이용에 관한 법률",
}
# Former names that court decisions still cite, -> the law that took over their provisions. Used only when
# the former name itself is not in the corpus (a corpus of old statutes keeps its own). A law replaced by
# another (증권거래법 -> 자본시장법) does not keep its article numbers: citations resolved this way are
# counted apart (PrecedentStats.via_rename) and flagged in the query's metadata.
LAW_RENAMES: dict[str, str] = {
    "증권거래법": "자본시장과 금융투자업에 관한 법률",
    "간접투자자산운용업법": "자본시장과 금융투자업에 관한 법률",
    "선물거래법": "자본시장과 금융투자업에 관한 법률",
    "신탁업법": "자본시장과 금융투자업에 관한 법률",
    "회사정리법": "채무자 회생 및 파산에 관한 법률",
    "파산법": "채무자 회생 및 파산에 관한 법률",
    "화의법": "채무자 회생 및 파산에 관한 법률",
    "주택건설촉진법": "주택법",
    "임대주택법": "민간임대주택에 관한 특별법",
    "성폭력범죄의처벌및피해자보호등에관한법률": "성폭력범죄의 처벌 등에 관한 특례법",
    "청소년의성보호에관한법률": "아동ㆍ청소년의 성보호에 관한 법률",
    "도시계획법": "국토의 계획 및 이용에 관한 법률",
    "국토이용관리법": "국토의 계획 및 이용에 관한 법률",
    # renamed with their article numbers kept
    "공인중개사의 업무 및 부동산 거래신고에 관한 법률": "공인중개사법",
    "특정 범죄자에 대한 위치추적 전자장치 부착 등에 관한 법률": "전자장치 부착 등에 관한 법률",
    "특정 범죄자에 대한 보호관찰 및 전자장치 부착 등에 관한 법률": "전자장치 부착 등에 관한 법률",
    "수질 및 수생태계 보전에 관한 법률": "물환경보전법",
    "근로자직업능력 개발법": "국민 평생 직업능력 개발법",
    "보조금의 예산 및 관리에 관한 법률": "보조금 관리에 관한 법률",
}


def norm_name(name: str) -> str:
    """A law name as a lookup key: NFKC, then middle dots unified, spaces and 「」 removed."""
    return re.sub(r"[\s「」]", "", _MIDDLE_DOTS.sub("·", unicodedata.normalize("NFKC", name)))


_ALIAS_KEYS = {norm_name(k): norm_name(v) for k, v in LAW_ALIASES.items()}
_RENAME_KEYS = {norm_name(k): norm_name(v) for k, v in LAW_RENAMES.items()}


def name_candidates(name: str) -> list[tuple[str, str]]:
    """Lookup keys for a cited law name, in order, with how each was found: the name itself ('name'), its
    short name's full name ('alias'), the law that took over from a former name ('rename'); also for its
    시행령/시행규칙."""
    key = norm_name(name)
    out = [(key, "name")]
    suffix = next((s for s in ("시행령", "시행규칙") if key.endswith(s)), "")
    act = key[: len(key) - len(suffix)]
    for how, table in (("alias", _ALIAS_KEYS), ("rename", _RENAME_KEYS)):
        if act in table:
            out.append((table[act] + suffix, how))
    return out


def act_name(name: str) -> str:
    """The act a decree or rule belongs to: ``상법 시행령`` -> ``상법``."""
    return re.sub(r"\s*(시행령|시행규칙)$", "", name)
