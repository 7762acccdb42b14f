//! Media: SDP offer/answer (RFC 3264), RTP/RTCP (RFC 3550), G.711, RFC 4733 DTMF,
//! prompt playback and stereo call recording. Knows nothing of SIP or calls.
