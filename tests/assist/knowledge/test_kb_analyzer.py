"""Tokenisation: content morphemes, domain compounds, spacing variants, colloquial expansion."""

from __future__ import annotations

from assist.knowledge.analyzer import whitespace_tokens


def test_content_morphemes_drop_particles_and_endings(analyzer) -> None:
    toks = analyzer.content_morphemes("불법 주정차 차량을 신고하고 싶은데 과태료는 얼마인가요")
    assert "주정차" in toks and "과태료" in toks and "신고" in toks and "차량" in toks
    assert "을" not in toks and "는" not in toks and "ᆫ가요" not in toks


def test_domain_compound_is_whole_and_split(analyzer) -> None:
    toks = analyzer.content_morphemes("대형폐기물 배출")
    assert "대형폐기물" in toks
    assert "폐기물" in toks and "대형" in toks


def test_spacing_variants_meet_on_the_compound(analyzer) -> None:
    joined = set(analyzer.content_morphemes("대형폐기물"))
    spaced = set(analyzer.content_morphemes("대형 폐기물"))
    assert "대형폐기물" in spaced
    assert joined <= spaced | joined and "대형폐기물" in joined


def test_interfloor_noise_is_not_split_into_verbs(analyzer) -> None:
    toks = analyzer.content_morphemes("윗집 층간소음 때문에 힘들어요")
    assert "층간소음" in toks
    assert "가" not in toks


def test_colloquial_variants_expand_to_legal_terms(analyzer) -> None:
    toks = analyzer.query_tokens("불법 주차 딱지 떼였어요")
    assert "주정차" in toks
    assert "과태료" in toks
    assert "과태료" not in analyzer.query_tokens("불법 주차 딱지 떼였어요", expand=False)


def test_expansion_ignores_spacing(analyzer) -> None:
    assert analyzer.expansions("불법 주 차") == analyzer.expansions("불법주차")


def test_nouns_keep_compounds(analyzer) -> None:
    nouns = analyzer.nouns("대형 폐기물 스티커를 붙였는데 수거를 안 해 가요")
    assert "대형폐기물" in nouns
    assert "스티커" in nouns and "수거" in nouns


def test_fingerprint_changes_with_the_dictionary(analyzer) -> None:
    from assist.knowledge import KoreanAnalyzer

    other = KoreanAnalyzer(extra_terms=["대형폐기물", "층간소음", "다산콜재단"])
    assert other.fingerprint() != analyzer.fingerprint()


def test_fingerprint_is_known_without_building_the_analyzer(analyzer) -> None:
    """Index keys are computed on every start from the fingerprint alone (no kiwipiepy)."""
    from assist.knowledge.analyzer import analyzer_fingerprint

    assert analyzer_fingerprint(["대형폐기물", "층간소음"]) == analyzer.fingerprint()
    # the same normalisation as the user dictionary: spaces dropped, one-letter and odd terms ignored
    assert analyzer_fingerprint(["대형 폐기물", "층간소음", "x", "a/b"]) == analyzer.fingerprint()
    assert analyzer_fingerprint(["대형폐기물", "층간소음"], typo_tolerant=True) != analyzer.fingerprint()


def test_whitespace_baseline() -> None:
    assert whitespace_tokens("「도로교통법」 제32조(정차 및 주차의 금지), 과태료!") == [
        "도로교통법",
        "제32조(정차",
        "및",
        "주차의",
        "금지",
        "과태료",
    ]
