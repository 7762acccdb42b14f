//! SDP offer/answer against the SDP bodies of the RFC 4475 and RFC 5118 torture
//! messages in `tests/data` (vendored from `../shared/testdata`): every well-formed
//! body parses, answers pick PCMU or report no common codec, IPv6 and per-stream
//! addresses are honoured.

// Test helpers outside #[test] functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use dispatchline::media::sdp::{
    self, Codec, Direction, SdpError, SdpPreferences, SessionDescription,
};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The body of a SIP message: everything after the first empty line (whatever
/// Content-Length says; the README notes some are wrong).
fn body(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let start = [("\r\n\r\n", 4), ("\n\n", 2)]
        .iter()
        .filter_map(|(sep, n)| text.find(sep).map(|i| i + n))
        .min()?;
    let body = text.get(start..)?.to_owned();
    body.starts_with("v=0").then_some(body)
}

fn local() -> SocketAddr {
    "127.0.0.1:20000".parse().unwrap()
}

#[test]
fn rfc4475_bodies_parse_and_answer_pcmu() {
    let dir = testdata().join("rfc4475");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(text) = body(&path) else { continue };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = SessionDescription::parse(&text);
        if name == "test.dat" {
            // Its "SDP" is two lines of junk.
            assert!(parsed.is_err(), "{name}");
            continue;
        }
        let offer = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        let (answer, neg) = sdp::answer(&offer, local(), &SdpPreferences::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(neg.codec.codec, Codec::Pcmu, "{name}");
        assert_eq!(neg.remote_rtp.unwrap().port(), 49217, "{name}");
        assert_eq!(neg.direction, Direction::SendRecv, "{name}");
        assert_eq!(answer.media.len(), offer.media.len(), "{name}");
        for (m, a) in offer.media.iter().zip(&answer.media) {
            if m.kind == "video" {
                assert_eq!(a.port, 0, "{name}: video must be rejected");
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 15,
        "only {checked} bodies found in {}",
        dir.display()
    );
    // wsinv.dat's session-level c= differs from o=: the media goes to c=.
    let wsinv = SessionDescription::parse(&body(&dir.join("wsinv.dat")).unwrap()).unwrap();
    let (_, neg) = sdp::answer(&wsinv, local(), &SdpPreferences::default()).unwrap();
    assert_eq!(neg.remote_rtp, Some("192.0.2.4:49217".parse().unwrap()));
}

#[test]
fn rfc5118_ipv6_bodies() {
    for dir in ["rfc5118", "rfc5118/ersip-crlf"] {
        let dir = testdata().join(dir);
        // G.726 audio and H.263 video over IPv6: parsed, but nothing in common (488).
        for name in ["ipv6-in-sdp", "ipv4-mapped-ipv6"] {
            let offer = SessionDescription::parse(&body(&dir.join(name)).unwrap()).unwrap();
            assert!(
                matches!(offer.connection, Some(ip) if ip.is_ipv6()),
                "{name}"
            );
            assert_eq!(
                sdp::answer(&offer, local(), &SdpPreferences::default()),
                Err(SdpError::NoCommonCodec),
                "{name}"
            );
        }
        // PCMU at an IPv4 media-level address, video at an IPv6 one.
        let offer = SessionDescription::parse(&body(&dir.join("mult-ip-in-sdp")).unwrap()).unwrap();
        assert_eq!(offer.origin.address, "host.example.com");
        let (answer, neg) = sdp::answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert_eq!(neg.remote_rtp, Some("192.0.2.1:22334".parse().unwrap()));
        assert_eq!(neg.codec.codec, Codec::Pcmu);
        assert_eq!(answer.media[1].port, 0);
        // Answering from an IPv6 address writes IP6 in o= and c=.
        let local6: SocketAddr = "[2001:db8::10]:30000".parse().unwrap();
        let (answer6, _) = sdp::answer(&offer, local6, &SdpPreferences::default()).unwrap();
        let text = answer6.to_string();
        assert!(text.contains("c=IN IP6 2001:db8::10\r\n"), "{text}");
        assert!(text.contains("m=audio 30000 RTP/AVP 0"), "{text}");
    }
}

#[test]
fn sipp_uac_pcap_offer_gets_pcma_and_telephone_event_101() {
    // The SDP of `sipp -sd uac_pcap`, with SIPp's keywords filled in.
    let offer = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";
    let offer = SessionDescription::parse(offer).unwrap();
    let (answer, neg) = sdp::answer(&offer, local(), &SdpPreferences::default()).unwrap();
    assert_eq!(neg.codec.pt, 8);
    assert_eq!(neg.dtmf_pt, Some(101));
    let text = answer.to_string();
    assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{text}");
}
