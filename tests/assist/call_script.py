"""What the assist service tests say on a call: caller questions and a transcript segment builder."""

from __future__ import annotations

from streaming.events import Channel, TranscriptSegment

METER = "연락처는 공일공 사오육칠에 팔팔구구예요. 수도 계량기가 얼어서 터졌어요, 교체 비용은 제가 내야 돼요?"
ID_CARD = "주민등록증을 잃어버렸는데 재발급 받으려면 어떻게 해야 돼요?"
ID_FEE = "재발급 수수료는 얼마예요?"
PARKING = "집 앞 인도에 차가 올라와서 주차돼 있어요, 불법주차 단속 안 되나요?"


def seg(
    call: str, sid: str, channel: Channel, text: str, start: float, final: bool = True, rev: int = 0
) -> TranscriptSegment:
    """A two-second segment of ``text`` starting at ``start`` (audio seconds)."""
    return TranscriptSegment(
        call_id=call,
        segment_id=sid,
        channel=channel,
        start_s=start,
        end_s=start + 2.0,
        text=text,
        is_final=final,
        revision=rev,
        asr_model="scripted",
    )
