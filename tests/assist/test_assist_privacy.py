"""Masking of personal data: real-world formats, spoken forms, and no false masks."""

from __future__ import annotations

import pytest

from streaming.privacy import (
    ALL_MASKS,
    MASK_ACCOUNT,
    MASK_ADDRESS,
    MASK_BIRTH,
    MASK_CARD,
    MASK_EMAIL,
    MASK_FRN,
    MASK_PHONE,
    MASK_RRN,
    MASK_VEHICLE,
    find_pii,
    luhn_ok,
    mask_text,
    rrn_checksum_ok,
)


def _rrn(front: str, gender: str, six: str) -> str:
    """A 주민등록번호 with a valid check digit (invented)."""
    digits = front + gender + six
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 10
    return digits + str(check)


VALID_RRN = _rrn("900101", "1", "23456")
VALID_FRN = VALID_RRN[:6] + "5" + VALID_RRN[7:12]
VALID_FRN = VALID_FRN + str(
    (
        (
            11
            - sum(int(d) * w for d, w in zip(VALID_FRN, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
            % 11
        )
        % 10
        + 2
    )
    % 10
)

MASKED = [
    # (text, kind that must appear, raw fragment that must disappear)
    ("연락처는 010-1234-5678이에요", MASK_PHONE, "1234"),
    ("01012345678로 문자 주세요", MASK_PHONE, "5678"),
    ("010 1234 5678", MASK_PHONE, "5678"),
    ("0 1 0 1 2 3 4 5 6 7 8 이요", MASK_PHONE, "5 6 7 8"),
    ("연락처는 공일공 사오육칠에 팔팔구구예요", MASK_PHONE, "팔팔구구"),
    ("공일공 삼칠이구에 오팔사일이요", MASK_PHONE, "오팔사일"),
    ("공일공 하나둘셋넷 오육칠팔", MASK_PHONE, "하나둘셋넷"),
    ("사무실은 02-123-4567 입니다", MASK_PHONE, "4567"),
    ("031)123-4567로 걸어 주세요", MASK_PHONE, "4567"),
    ("공이 칠공공에 일이삼사요", MASK_PHONE, "일이삼사"),
    ("전화번호는 123-4567 입니다", MASK_PHONE, "4567"),
    (f"주민번호 {VALID_RRN[:6]}-{VALID_RRN[6:]} 입니다", MASK_RRN, VALID_RRN[6:]),
    (f"{VALID_RRN}", MASK_RRN, VALID_RRN),
    ("800101-4234567", MASK_RRN, "4234567"),  # issued after 2020-10: no checksum, 6-7 grouping
    ("제 주민번호 불러 드릴까요? 구공공삼일오에 다시 이공사…", MASK_RRN, "이공사"),
    ("주민번호 앞자리는 900315예요", MASK_RRN, "900315"),
    (f"외국인등록번호 {VALID_FRN[:6]}-{VALID_FRN[6:]}", MASK_FRN, VALID_FRN[6:]),
    ("카드번호 4111 1111 1111 1111 이에요", MASK_CARD, "1111 1111"),
    ("카드는 5500-0000-0000-0004", MASK_CARD, "0004"),
    ("계좌는 국민은행 123456-01-234567 이에요", MASK_ACCOUNT, "234567"),
    ("신한 110-123-456789로 입금했어요", MASK_ACCOUNT, "456789"),
    ("농협 계좌 삼오이공일이삼사오육칠팔구로 보냈어요", MASK_ACCOUNT, "삼오이공일이삼사오육칠팔구"),
    ("hong.gildong@naver.com 으로 보내 주세요", MASK_EMAIL, "gildong"),
    ("이메일은 hong 골뱅이 naver 점 com 이에요", MASK_EMAIL, "naver"),
    ("차 번호는 삼사나 칠칠팔일이에요.", MASK_VEHICLE, "칠칠팔일"),
    ("차 번호는 서울 삼삼바 일이삼사요.", MASK_VEHICLE, "일이삼사"),
    ("12가 3456 차량이 인도에 세워져 있어요", MASK_VEHICLE, "3456"),
    ("123허4567 렌터카예요", MASK_VEHICLE, "4567"),
    ("저는 팔십구년 삼월 이일생이고요.", MASK_BIRTH, "삼월 이일"),
    ("1989.03.02생입니다", MASK_BIRTH, "03.02"),
    ("주소는 관악구 신림동 삼백이십일 번지예요.", MASK_ADDRESS, "삼백이십일"),
    ("주소는 성북구 정릉동 정릉로 이십일길 열다섯이에요.", MASK_ADDRESS, "열다섯"),
    ("테헤란로 123-4 3층이에요", MASK_ADDRESS, "123-4"),
    ("101동 1203호에 살아요", MASK_ADDRESS, "1203"),
    ("신림동 321-12번지", MASK_ADDRESS, "321-12"),
]


@pytest.mark.parametrize(("text", "kind", "raw"), MASKED)
def test_masks_personal_data(text: str, kind: str, raw: str) -> None:
    out = mask_text(text)
    assert kind in out, out
    assert raw not in out, out


NOT_MASKED = [
    "2024년 5월 28일에 잔금 치렀어요",
    "오월 이십팔일에 잔금 치렀고요",
    "과태료가 1,200,000원 나왔어요",
    "삼십만 원 넘게 나와서 나눠 내고 싶어요",
    "2024.05.28에 고지서가 왔어요",
    "2024-05-28 기준으로",
    "「도로교통법」 제32조제1항제1호에 따라 처리합니다",
    "주차장법 시행령 제6조의3 제2항",
    "60일 이내에 신고하셔야 하고 20%가 가산됩니다",
    "오후 3시 30분쯤 7월 16일부터 31일까지",
    "하나 더요, 부동산에서 올해 재산세는",
    "이사 오고 나서 이 일이 생겼어요",
    "700세대 이상 공동주택",
    "1588-1234 로 전화",
    "120다산콜센터입니다",
    "지하철로 오십분 걸려요, 정문으로 세 번 갔어요",
    "5미터 이내인 곳, 10미터 이내",
    "어머니가 이번 달에 예순다섯이 되셨거든요",
    "세 장이나 와서, 두 달도 더 전에",
    "성북구 정릉동 주민센터",
]


@pytest.mark.parametrize("text", NOT_MASKED)
def test_no_false_masks(text: str) -> None:
    assert mask_text(text) == text


def test_checksums() -> None:
    assert rrn_checksum_ok(VALID_RRN)
    assert not rrn_checksum_ok(VALID_RRN[:12] + str((int(VALID_RRN[12]) + 1) % 10))
    assert rrn_checksum_ok(VALID_FRN)
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")


def test_spans_are_sorted_disjoint_and_kinds_known() -> None:
    text = "공일공 일이삼사 오육칠팔이요, hong@example.com, 주소는 정릉로 이십일길 열다섯"
    spans = find_pii(text)
    assert [s.kind for s in spans] == [MASK_PHONE, MASK_EMAIL, MASK_ADDRESS]
    for a, b in zip(spans, spans[1:], strict=False):
        assert a.end <= b.start
    assert all(s.kind in ALL_MASKS for s in spans)


def test_keeps_the_district_and_neighbourhood() -> None:
    out = mask_text("은평구 갈현동이요. 주소는 성북구 정릉동 정릉로 이십일길 열다섯이에요.")
    assert "은평구 갈현동" in out and "성북구 정릉동" in out and MASK_ADDRESS in out


def test_empty_and_idempotent() -> None:
    assert mask_text("") == ""
    once = mask_text("연락처는 공일공 사오육칠에 팔팔구구예요")
    assert mask_text(once) == once
