//! Realistic SDP bodies, written for these tests in the style of the
//! phones and gateways the switch meets. Shared by the integration tests.

#![allow(dead_code)]

/// A Zoiper 5 softphone offer: opus first, two telephone-events, rtcp-mux.
pub const ZOIPER: &str = "v=0\r\n\
o=Z 1700000000123 1 IN IP4 192.168.1.34\r\n\
s=Z\r\n\
c=IN IP4 192.168.1.34\r\n\
t=0 0\r\n\
m=audio 52018 RTP/AVP 106 9 98 101 0 8 3\r\n\
a=rtpmap:106 opus/48000/2\r\n\
a=fmtp:106 sprop-maxplaybackrate=16000; minptime=20; useinbandfec=1\r\n\
a=rtpmap:98 telephone-event/48000\r\n\
a=fmtp:98 0-16\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n";

/// A baresip offer with LF-only line ends, bandwidth, ssrc and rtcp-rsize.
pub const BARESIP: &str = "v=0\n\
o=- 3937460184 1219461836 IN IP4 10.0.0.5\n\
s=-\n\
c=IN IP4 10.0.0.5\n\
t=0 0\n\
m=audio 10346 RTP/AVP 0 8 101\n\
b=AS:64\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-15\n\
a=sendrecv\n\
a=label:1\n\
a=ssrc:1820263018 cname:5f6b2a10-7c1e-4d7e-9c3e-0b1c2d3e4f50\n\
a=rtcp-rsize\n\
a=ptime:20\n";

/// A Twilio media gateway offer: PCMU only, ptime and maxptime.
pub const TWILIO: &str = "v=0\r\n\
o=root 1158823416 1158823416 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\n\
c=IN IP4 54.172.60.1\r\n\
t=0 0\r\n\
m=audio 16184 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// A Dinstar GSM gateway offer: PCMA first, G729 annexb=no, rtcp port.
pub const DINSTAR: &str = "v=0\r\n\
o=DinstarSIP 1700000000 1700000001 IN IP4 192.168.11.2\r\n\
s=SIP Call\r\n\
c=IN IP4 192.168.11.2\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 8 0 18 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=rtcp:10001 IN IP4 192.168.11.2\r\n\
a=sendrecv\r\n";

/// A linphone offer: session-level attributes, static PTs without rtpmap,
/// several telephone-events, a=rtcp, and a video stream.
pub const LINPHONE: &str = "v=0\r\n\
o=alice 2372 1129 IN IP4 192.168.0.20\r\n\
s=Talk\r\n\
c=IN IP4 192.168.0.20\r\n\
t=0 0\r\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n\
a=record:off\r\n\
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100\r\n\
a=rtpmap:96 opus/48000/2\r\n\
a=fmtp:96 useinbandfec=1\r\n\
a=rtpmap:97 speex/16000\r\n\
a=fmtp:97 vbr=on\r\n\
a=rtpmap:98 speex/8000\r\n\
a=fmtp:98 vbr=on\r\n\
a=fmtp:18 annexb=yes\r\n\
a=rtpmap:101 telephone-event/48000\r\n\
a=rtpmap:99 telephone-event/16000\r\n\
a=rtpmap:100 telephone-event/8000\r\n\
a=rtcp:7079\r\n\
a=rtcp-fb:* trr-int 1000\r\n\
a=rtcp-fb:* ccm tmmbr\r\n\
m=video 9078 RTP/AVP 96 97\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 H264/90000\r\n\
a=fmtp:97 profile-level-id=42801F\r\n\
a=rtcp:9079\r\n\
a=rtcp-fb:* ccm fir\r\n";

/// A WebRTC-style IPv6 offer over DTLS-SRTP (which the switch rejects).
pub const WEBRTC_IPV6: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP6 2001:db8::1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 126\r\n\
c=IN IP6 2001:db8::1\r\n\
a=rtcp:9 IN IP6 ::\r\n\
a=ice-ufrag:Xk2q\r\n\
a=ice-pwd:8fJ2mZ1qvP0s3LwYdR7aT9cB\r\n\
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:126 telephone-event/8000\r\n";

/// An IPv6 plain RTP offer from a desk phone, media-level c= only.
pub const IPV6_PLAIN: &str = "v=0\r\n\
o=- 20518 0 IN IP6 2001:db8:0:1::10\r\n\
s=SDP Data\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 8 101\r\n\
c=IN IP6 2001:db8:0:1::10\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// A re-INVITE putting the call on hold the RFC 2543 way.
pub const HOLD_2543: &str = "v=0\r\n\
o=- 3937460184 1219461837 IN IP4 10.0.0.5\r\n\
s=-\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
m=audio 10346 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// A re-INVITE putting the call on hold the RFC 3264 way.
pub const HOLD_SENDONLY: &str = "v=0\r\n\
o=Z 1700000000123 2 IN IP4 192.168.1.34\r\n\
s=Z\r\n\
c=IN IP4 192.168.1.34\r\n\
t=0 0\r\n\
m=audio 52018 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendonly\r\n";

/// Every sample above.
pub const ALL: [(&str, &str); 9] = [
    ("zoiper", ZOIPER),
    ("baresip", BARESIP),
    ("twilio", TWILIO),
    ("dinstar", DINSTAR),
    ("linphone", LINPHONE),
    ("webrtc", WEBRTC_IPV6),
    ("ipv6", IPV6_PLAIN),
    ("hold2543", HOLD_2543),
    ("holdsendonly", HOLD_SENDONLY),
];
