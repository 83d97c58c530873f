"""enx-voice media: RTP/RTCP formats, the relay, RFC 4733 DTMF and the prompt player."""
