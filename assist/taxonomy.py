"""The fixed taxonomy of 민원 유형 (call categories) a summary is filed under.

Derived from the corpus: each category groups the corpus' topic tags (``topics`` of each record) and
the laws they come from, plus the everyday words callers use for it. A call is classified by
votes: the laws and topic tags of the passages retrieved for its caller turns, and the category
words in what was said. ``기타`` takes what matches nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

OTHER = "기타"


@dataclass(frozen=True)
class Category:
    name: str
    description: str
    corpus_topics: tuple[str, ...]
    laws: tuple[str, ...]
    words: tuple[str, ...] = field(default=())


TAXONOMY: tuple[Category, ...] = (
    Category(
        "불법주정차",
        "주정차 위반, 견인, 단속",
        ("불법주정차",),
        ("도로교통법", "도로교통법 시행령"),
        ("불법주차", "주정차", "주차 위반", "견인", "인도에 차", "단속"),
    ),
    Category(
        "과태료_의견진술",
        "과태료 부과·체납·이의·징수유예",
        ("과태료", "의견진술", "이의제기"),
        ("질서위반행위규제법",),
        ("과태료", "가산금", "체납", "징수유예", "영치", "번호판", "의견진술", "고지서"),
    ),
    Category(
        "대형폐기물",
        "대형폐기물 배출·수거·수수료",
        ("대형폐기물",),
        ("서울특별시 강남구 폐기물 관리 조례",),
        ("대형폐기물", "대형 폐기물", "스티커", "가구", "소파", "침대", "냉장고 버리"),
    ),
    Category(
        "생활폐기물",
        "생활폐기물·종량제·재활용·유해폐기물",
        ("생활폐기물", "종량제"),
        ("폐기물관리법", "폐기물관리법 시행령", "폐기물관리법 시행규칙", "서울특별시 폐기물 관리 조례"),
        ("쓰레기", "종량제", "재활용", "분리배출", "건전지", "형광등", "폐의약품", "음식물"),
    ),
    Category(
        "무단투기",
        "쓰레기 무단투기·소각",
        ("무단투기",),
        (),
        ("무단투기", "몰래 버", "버리고 가", "태우", "소각", "투기"),
    ),
    Category(
        "층간소음",
        "공동주택 층간소음",
        ("층간소음",),
        ("서울특별시 공동주거시설 층간소음 관리에 관한 조례",),
        ("층간소음", "윗집", "아랫집", "발소리", "뛰는 소리"),
    ),
    Category(
        "공동주택",
        "아파트 관리·간접흡연 등",
        ("공동주택",),
        ("공동주택관리법", "공동주택관리법 시행령"),
        ("관리사무소", "입주자", "간접흡연", "담배 연기", "관리비"),
    ),
    Category(
        "생활소음",
        "생활·공사장·이동 소음",
        ("생활소음", "공사장소음"),
        ("소음ㆍ진동관리법", "소음ㆍ진동관리법 시행령"),
        ("소음", "확성기", "공사 소음", "오토바이", "배기음"),
    ),
    Category(
        "지방세",
        "취득세·재산세·자동차세·주민세 등",
        ("지방세", "자동차세", "재산세", "취득세", "이의신청", "납부"),
        ("지방세법", "지방세기본법"),
        ("취득세", "재산세", "자동차세", "주민세", "지방세", "세금", "환급", "가산세"),
    ),
    Category(
        "상수도요금",
        "상수도 요금·계량기·수질",
        ("상수도", "수도요금", "누수"),
        ("수도법", "서울특별시 수도 조례"),
        ("수도", "계량기", "동파", "수도요금", "녹물", "수질", "누수"),
    ),
    Category(
        "택시_버스",
        "택시·버스 운수 불편",
        ("택시", "버스", "승차거부"),
        ("여객자동차 운수사업법", "택시운송사업의 발전에 관한 법률"),
        ("택시", "기사", "승차거부", "합승", "버스 기사", "카드 결제"),
    ),
    Category(
        "대중교통",
        "대중교통 요금·교통카드",
        ("대중교통", "교통카드"),
        ("대중교통의 육성 및 이용촉진에 관한 법률",),
        ("교통카드", "환승", "요금 환급", "지하철"),
    ),
    Category(
        "동물",
        "동물학대·맹견·반려동물",
        ("동물보호", "유기동물", "길고양이", "반려동물등록"),
        ("동물보호법", "서울특별시 동물보호 조례"),
        ("강아지", "개", "고양이", "반려견", "학대", "입마개", "맹견", "동물"),
    ),
    Category(
        "복지",
        "기초생활보장·긴급복지·기초연금·노인복지",
        ("복지", "기초생활보장", "긴급복지", "기초연금", "노인", "경로우대"),
        (
            "국민기초생활 보장법",
            "긴급복지지원법",
            "긴급복지지원법 시행령",
            "기초연금법",
            "노인복지법",
            "노인복지법 시행령",
        ),
        ("기초연금", "수급", "긴급지원", "생계", "노인", "어르신", "학대", "복지"),
    ),
    Category(
        "주민등록",
        "주민등록증·전입·등초본",
        ("주민등록", "등본", "전입신고"),
        ("주민등록법", "주민등록법 시행령"),
        ("주민등록증", "주민등록번호", "전입신고", "등본", "초본", "신분증"),
    ),
    Category(
        "여권", "여권 발급·변경", ("여권",), ("여권법", "여권법 시행령"), ("여권", "로마자", "영문 이름")
    ),
    Category(
        "도로파손",
        "도로·보도·시설물 파손",
        ("도로파손", "도로"),
        ("도로법",),
        ("도로", "포트홀", "가드레일", "표지판", "보도블록", "파손", "굴착", "복구"),
    ),
    Category(
        "주차", "주차장 설치·운영", ("주차",), ("주차장법", "주차장법 시행령"), ("주차장", "부설주차장")
    ),
    Category(
        "개인정보",
        "개인정보 수집·유출·CCTV",
        ("개인정보",),
        ("개인정보 보호법",),
        ("개인정보", "유출", "CCTV", "동의", "마케팅"),
    ),
    Category(
        "민원처리",
        "민원 처리 기간·절차·이의",
        ("민원처리", "민원상담", "120다산콜"),
        ("민원 처리에 관한 법률", "민원 처리에 관한 법률 시행령"),
        ("민원", "처리 기간", "회신", "답변이 없", "접수했"),
    ),
)
CATEGORY_NAMES: tuple[str, ...] = (*(c.name for c in TAXONOMY), OTHER)
_BY_LAW: dict[str, list[str]] = {}
_BY_TOPIC: dict[str, list[str]] = {}
for _c in TAXONOMY:
    for _law in _c.laws:
        _BY_LAW.setdefault(_law, []).append(_c.name)
    for _t in _c.corpus_topics:
        _BY_TOPIC.setdefault(_t, []).append(_c.name)


def categories_of(law_name: str, topics: Iterable[str]) -> list[str]:
    """Categories a corpus passage belongs to (its law first, then its topic tags)."""
    out = list(_BY_LAW.get(law_name, []))
    for t in topics:
        for name in _BY_TOPIC.get(t, []):
            if name not in out:
                out.append(name)
    return out


def word_votes(text: str) -> Counter[str]:
    squashed = text.replace(" ", "")
    votes: Counter[str] = Counter()
    for c in TAXONOMY:
        for w in c.words:
            if w.replace(" ", "") in squashed:
                votes[c.name] += 1
    return votes


def classify(texts: Sequence[str], hits: Sequence[Sequence[tuple[str, Sequence[str], float]]]) -> str:
    """Category from caller texts and, per text, its retrieved hits as (law_name, topics, weight)."""
    score: dict[str, float] = {}
    for text in texts:
        for name, n in word_votes(text).items():
            score[name] = score.get(name, 0.0) + 0.6 * n
    for text_hits in hits:
        for rank, (law, topics, weight) in enumerate(text_hits[:3]):
            cats = categories_of(law, topics)
            for j, name in enumerate(cats[:3]):
                score[name] = score.get(name, 0.0) + weight / (1 + rank) / (1 + j)
    if not score:
        return OTHER
    best = max(score.items(), key=lambda kv: kv[1])
    return best[0] if best[1] > 0.3 else OTHER


def category_from_label(label: str) -> str:
    """The taxonomy category a free-text label (e.g. a call's topic line) names first."""
    if label in CATEGORY_NAMES:
        return label
    if label == "범위외":
        return OTHER
    squashed = label.replace(" ", "")
    best: tuple[int, int, str] | None = None  # (-matches, first position, name)
    for c in TAXONOMY:
        positions = [squashed.find(w.replace(" ", "")) for w in (c.name, *c.corpus_topics, *c.words)]
        found = [p for p in positions if p >= 0]
        if found:
            cand = (-len(found), min(found), c.name)
            if best is None or cand < best:
                best = cand
    return best[2] if best else OTHER
