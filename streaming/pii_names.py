"""Korean personal names in call text: the name part of :mod:`streaming.privacy`.

Two layers, both returning ``(start, end)`` spans of the name itself:

- **Rules** (always on, no model): a name is a Korean surname plus one or two syllables, found by
  the forms callers and counselors use — self-introduction (``제 이름은 김철수입니다``,
  ``성함은 이정숙이세요``, ``김철수라고 합니다``), honorifics (``김영희 씨``, ``김영희 고객님``,
  ``홍길동님``, ``최민수 주무관님``) and the counselor's greeting (``상담사 김민지입니다``).
- **Model** (``DASAN_PRIVACY_NAMES=model``, the default): kiwipiepy's proper-noun tag (NNP) on a
  three- or four-syllable word that starts with a surname and whose given-name syllables are ones
  Korean names use — a name said without any cue (``어제 김철수가 왔는데``).

What must survive: place names (``송파구``, ``상도동``, ``강남``), laws (``도로교통법``) and
institutions (``다산콜센터``). A candidate is dropped when it ends in a place or institution
suffix, or when it is a place name or stem of the 21,701 동/리/구/시 names of ``dongnae-kr``
(``신림``, ``김포``, ``송파`` all start with a surname). Cue forms (``씨``, ``님``, ``이름은``) win over
the gazetteer: ``신림 씨`` is a person.

The counselor's own name is personal data too (an employee's name): it is masked like any other.
The counselor is identified by ``counselor_id`` in the call metadata, not by the transcript.

One Kiwi per process, loaded on first use (:func:`shared_kiwi`); other packages may share it.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import re
import threading
from functools import cache
from typing import Any


def words(text: str) -> frozenset[str]:
    """A set of words written as one string (long Korean word lists read better that way)."""
    return frozenset(text.split())


# Common Korean surnames (about 99% of the population). Two-syllable surnames first.
SURNAMES_2 = ("남궁", "황보", "제갈", "선우", "독고", "사공", "서문", "동방", "어금", "망절")
SURNAMES_1 = (
    "김이박최정강조윤장임한오서신권황안송전홍유고문양손배백허남심노하곽성차주우구민류나진지엄채원천방공"
    "현함변염여추도소석선설마길연위표명기반라왕금옥육인맹제모탁국은편용예경봉사부가복태목형피두감음빈동온"
    "호범좌팽승간상갈단견당화창"
)
_SURNAME_1_SET = frozenset(SURNAMES_1)

# Syllables that Korean given names use (the two syllables after the surname). A model-tagged
# proper noun whose given part uses a syllable outside this set (유실물, 방음벽) is not a name.
GIVEN_SYLLABLES = frozenset(
    "가간갑강건겸경계고공관광교구국군권규균근금기길나난남내녀노누늘다대덕도동두라란람랑래량려련렬령례로록"
    "론뢰료룡루류륜률륭리린림마만매맹명모목무문미민바박반방배백범변별병보복봉부비빈빛사산상새서석선설섭성"
    "세소솔송수숙순숭슬승시식신심아안애야양엄여연열염영예오옥온완왕요용우욱운웅원월위유윤율융은음의이익인"
    "일임자장재전정제조종좌주준중지직진차찬창채천철청초추춘충치태택표필하학한해향허헌혁현형혜호홍화환활황"
    "회효후훈휘흠희"
)

# Words that look like surname + syllables before 씨/님 but are not names (고객님, 마음씨, 박사님…).
NOT_NAMES = words(
    """고객 고객님 선생 사장 부장 과장 차장 회장 원장 팀장 실장 계장 반장 소장 국장 시장 구청장 동장 이장
    기사 기사님 주무관 상담사 상담원 담당자 담당 관리자 관리인 경비 교수 박사 도사 목사 신부 수녀 스님 간호사
    의사 약사 선배 후배 동생 형님 누님 언니 오빠 아저씨 아주머니 아가씨 할머니 할아버지 어머니 아버지 어머님
    아버님 부모님 사모님 따님 아드님 손님 주인 주인님 임대인 임차인 세입자 집주인 이웃 마음 마음씨 솜씨
    날씨 말씨 글씨 맵씨 불씨 홀씨 씨앗 신고 민원 안내 공무원 위원 위원장 의원 대표 대표님 사무장 총무
    성함 이름 본인 남편 아내 부인 아들 딸 가족 여러분 모두 다들 고객센터 선생님 사장님 구청 시청 동사무소
    정부 나라 주민 시민 구민 국민 우리 저희 제가 저는 그분 이분 저분 어느분 누구 아무 아무개 신청인 민원인
    대리 대리인 보호자 주무관님 팀장님 과장님 경찰 경찰관 소방관 구급대원 공단 공사 사무 사무실 한분 두분
    부모 회원 위원 주임 관장 통장 직원 사원 작가 기자 하느 하나 조상 부처 임금 공주 왕자 도련 서방 경비원
    안내원 배달원 전문가 조합장 장관 차관 총장 교장 교감 방장 고모 이모 장모 형수 제수 전도사 장로 권사
    석사 변호사 노무사 감독 임원 선수 코치 반장 조장 부모님 자녀 손자 손녀 조카 사위 며느리 시민분
    정말 진짜 정확 확인 신청 문의 상담 접수 처리 전화 연락 주소 번호 동의 본인확인 민원인 신청인 사용자
    장애인 노인 어르신 학생 주민분 이웃분 기사분 공무원 고객분 선생 손님 담당 주무 주무관 대리 과태료
    """
)

# Endings of places, institutions and laws: a word ending so is not a person's name. (Single
# syllables that end many given names — 원, 호, 수, 진 … — are not here: 박정원 is a person.)
NOT_NAME_SUFFIXES = (
    "특별시", "광역시", "자치시", "자치도", "시청", "구청", "군청", "도청", "센터", "공원", "병원", "의원",
    "학교", "대학", "대학교", "시장", "마트", "은행", "카드", "보험", "공단", "공사", "재단", "협회",
    "위원회", "사무소", "주민센터", "경찰서", "소방서", "우체국", "법원", "검찰청", "교회", "성당", "아파트",
    "빌라", "타운", "마을", "단지", "터널", "대교", "고가", "사거리", "삼거리", "네거리", "입구",
    "시행령", "시행규칙", "조례", "법률", "규칙", "규정", "지침", "고시", "콜센터", "다산콜", "백화점",
    "호텔", "빌딩", "타워", "프라자", "플라자", "상가", "공항", "터미널",
    "구", "동", "리", "읍", "면", "군", "시", "로", "길", "역", "청", "법", "령",
)  # fmt: skip
_SUFFIX_RE = re.compile(
    "(?:" + "|".join(sorted({re.escape(s) for s in NOT_NAME_SUFFIXES}, key=len, reverse=True)) + ")$"
)

# A few place stems the gazetteer does not hold (countries, regions, Seoul landmarks).
_EXTRA_PLACES = words(
    """서울 부산 대구 인천 광주 대전 울산 세종 경기 강원 충북 충남 전북 전남 경북 경남 제주 한국 대한민국
    미국 중국 일본 베트남 한강 남산 북한산 관악산 청계천 여의도 강남 강북 강동 강서 송파 서초 마포 용산
    성동 성북 노원 도봉 은평 종로 중랑 동작 관악 구로 금천 양천 영등포 동대문 서대문 광진 김포 하남 구리
    남양주 안양 안산 고양 성남 수원 용인 부천 의정부 시흥 광명 과천 군포 의왕 오산 평택 화성 이천 여주
    파주 양주 포천 동두천 연천 가평 양평 춘천 원주 강릉 청주 천안 전주 목포 여수 순천 포항 경주 구미
    창원 김해 진주 통영 거제 다산 다산콜 한빛 새빛"""
)

NAME_2_TO_4 = (
    "(?:" + "|".join(SURNAMES_2) + ")[가-힣]{1,2}|[" + SURNAMES_1 + "][가-힣]{1,2}"
)  # a full name: surname + one or two syllables (bounded)
_NAME = rf"(?P<n>{NAME_2_TO_4})"
_GIVEN = r"(?P<n>[가-힣]{2})"  # a given name alone (영희 씨)

# What may follow a name in a self-introduction: a copula or particle.
_COPULA = (
    r"(?:이에요|이예요|예요|에요|입니다|이고요|이구요|이고|이요|이라고|라고|이세요|세요|인데요|인데|이거든요"
    r"|이랑|이니까|이십니다|십니다|이었습니다|이었어요|이었고요|였습니다|였어요|였고요|이신데요|이시고요|고요|구요|고|님|씨|요)"
)
_STRONG_RULES = (
    # 제 이름은 김철수입니다 / 성함은 이정숙이세요 / 어머니 성함이 박순자예요 / 예금주는 김철수예요
    re.compile(rf"(?:이름|성함|존함|명의|예금주)(?:은|는|이|가)?\s{{0,2}}{_NAME}(?={_COPULA})"),
    # 김영희 씨 / 김영희 고객님 / 홍길동님 / 최민수 주무관님 / 김민지 상담사입니다
    _HONORIFIC := re.compile(
        rf"(?<![가-힣]){_NAME}\s{{0,1}}(?=씨(?![가-힣])|씨[는가요를한께의도]|님|고객님|선생님|어르신|주무관|팀장님"
        r"|과장님|기사님|상담사(?:님|입니다|예요|이에요)|환자분|보호자분)"
    ),
    # 이름은 김 철 수예요 (said syllable by syllable)
    re.compile(
        rf"(?:이름|성함)(?:은|는|이|가)?\s{{0,2}}(?P<n>[{SURNAMES_1}]\s{{1,2}}[가-힣]\s{{1,2}}[가-힣])(?={_COPULA})"
    ),
    # 120다산콜센터 상담사 김민지입니다 / 담당자 박지성이에요
    re.compile(rf"(?:상담사|상담원|담당자|주무관|팀장|과장|기사)\s{{0,2}}{_NAME}(?={_COPULA})"),
)
# Weaker cues: in model mode the word must also be a proper noun (NNP) for Kiwi.
_WEAK_RULES = (
    # 저는 김철수예요 / 전 김철수라고 합니다
    re.compile(rf"(?:^|(?<=[\s,.]))(?:저는|전|나는|본인은|저)\s{{1,2}}{_NAME}(?={_COPULA})"),
    # 김철수라고 합니다 (anything can be 'called' something)
    re.compile(
        rf"(?<![가-힣]){_NAME}(?=(?:이라고|라고)\s{{0,2}}(?:합니다|해요|하는데|하고요|하구요|하거든요|불러))"
    ),
    # 영희 씨 (a given name alone before 씨/님)
    re.compile(rf"(?<![가-힣]){_GIVEN}\s{{0,1}}(?=씨(?![가-힣])|씨[는가요를한께의도]|님(?![가-힣]))"),
)


def _plausible_given(given: str) -> bool:
    return bool(given) and all(ch in GIVEN_SYLLABLES for ch in given)


def _split(name: str) -> tuple[str, str]:
    for s in SURNAMES_2:
        if name.startswith(s) and len(name) > len(s):
            return s, name[len(s) :]
    return name[:1], name[1:]


@cache
def places() -> frozenset[str]:
    """Place names and their stems: dongnae-kr's 동/리/읍/면/구/시/군 names plus a few more."""
    names: set[str] = set(_EXTRA_PLACES)
    try:
        data = importlib.resources.files("dongnae_kr").joinpath("data/dongnaeKR_251130.csv")
        text = data.read_text(encoding="utf-8-sig")
    except (ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - a dependency
        text = ""
    for row in csv.DictReader(io.StringIO(text)):
        for part in (row.get("dnname") or "").split()[1:]:
            names.add(part)
            stem = re.sub(r"(?:제?[0-9]{0,2}(?:동|가)|[0-9]{0,2}리|읍|면|구|시|군)$", "", part)
            if len(stem) >= 2:
                names.add(stem)
    return frozenset(names)


_ADMIN_SUFFIX = ("구", "동", "리", "읍", "면", "군")


def is_place(word: str, *, strict: bool = True) -> bool:
    """A place or institution name (or stem), or a word ending like one (…구, …센터, …법).

    ``strict=False`` leaves the one-syllable administrative endings (구, 동, 리 …) to the gazetteer,
    which holds every official one: 홍길동 and 김민구 are people, 길동 and 구로구 places."""
    if word in places():
        return True
    m = _SUFFIX_RE.search(word) if len(word) >= 2 else None
    return m is not None and (strict or m.group() not in _ADMIN_SUFFIX)


_kiwi: Any = None
_kiwi_lock = threading.Lock()


def shared_kiwi() -> Any:
    """The process's one Kiwi (kiwipiepy), created on first use (about 0.5 GB, seconds to load)."""
    global _kiwi
    with _kiwi_lock:
        if _kiwi is None:
            from kiwipiepy import Kiwi

            _kiwi = Kiwi()
        return _kiwi


def use_kiwi(kiwi: Any) -> None:
    """Share an already loaded Kiwi (e.g. assist's) instead of loading a second one."""
    global _kiwi
    with _kiwi_lock:
        _kiwi = kiwi


def _model_names(text: str, nnp: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Proper nouns that look like a full name: surname + two given-name syllables, not a place."""
    out: list[tuple[int, int]] = []
    for start, end in nnp:
        form = text[start:end]
        if not 3 <= len(form) <= 4 or not re.fullmatch(r"[가-힣]{3,4}", form):
            continue
        surname, given = _split(form)
        if surname not in SURNAMES_2 and surname not in _SURNAME_1_SET:
            continue
        if (
            len(given) == 2
            and _plausible_given(given)
            and form not in NOT_NAMES
            and not is_place(form, strict=False)
        ):
            out.append((start, end))
    return out


def _name_like(name: str, *, given_only: bool = False) -> bool:
    name = name.replace(" ", "")
    if name in NOT_NAMES:
        return False
    if given_only:
        return len(name) == 2 and _plausible_given(name) and name not in places()
    surname, given = _split(name)
    return _plausible_given(given) and not (_SUFFIX_RE.search(name) and name in places())


def _nnp_spans(text: str) -> list[tuple[int, int]]:
    kiwi = shared_kiwi()
    with _kiwi_lock:  # one analysis at a time on the shared instance
        tokens = kiwi.tokenize(text)
    return [(t.start, t.start + t.len) for t in tokens if t.tag == "NNP"]


def find_names(text: str, *, model: bool = True) -> list[tuple[int, int]]:
    """Spans of personal names in ``text`` (normalised, bounded length), sorted and disjoint."""
    spans: list[tuple[int, int]] = []
    for rule in _STRONG_RULES:
        for m in rule.finditer(text):
            name = m.group("n")
            # before an honorific a surname + one syllable is too often a word (엉망 이구 기사님)
            if _name_like(name) and (rule is not _HONORIFIC or len(_split(name)[1]) >= 2):
                spans.append((m.start("n"), m.end("n")))
    weak: list[tuple[int, int]] = []
    for i, rule in enumerate(_WEAK_RULES):
        for m in rule.finditer(text):
            name = m.group("n")
            if i == 2:
                ok = _name_like(name, given_only=True)
            else:
                ok = len(_split(name)[1]) == 2 and _name_like(name) and not is_place(name, strict=not model)
            if ok:
                weak.append((m.start("n"), m.end("n")))
    if model and re.search(r"[가-힣]", text):
        nnp = _nnp_spans(text)
        # a weak cue counts when Kiwi also reads a proper noun there
        spans += [w for w in weak if any(s < w[1] and w[0] < e for s, e in nnp)]
        spans += _model_names(text, nnp)
    else:
        spans += weak
    spans.sort()
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and s < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
