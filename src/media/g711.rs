//! G.711 (ITU-T G.711, 1988): μ-law (PCMU, RTP payload type 0) and A-law (PCMA,
//! payload type 8) companding at 8 kHz, RFC 3551 §4.5.14.
//!
//! Owns the sample conversions and the direct PCMU↔PCMA transcoding tables used by
//! the relay. Decoding is a 256-entry table built at compile time; encoding follows the
//! reference segment search (G.711 Appendix / Sun's `g711.c`), so encode(decode(x)) is
//! the identity for every code word except the two μ-law zeros. Transcoding between
//! the laws goes through linear PCM once, also at compile time, so the relay does one
//! table lookup per byte.

/// A G.711 law: which companding a payload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Law {
    /// μ-law (PCMU).
    Mu,
    /// A-law (PCMA).
    A,
}

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// Encodes one 16-bit linear sample to μ-law.
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut pcm = sample as i32;
    let sign = if pcm < 0 { 0x80 } else { 0x00 };
    if pcm < 0 {
        pcm = -pcm;
    }
    if pcm > CLIP {
        pcm = CLIP;
    }
    pcm += BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && (pcm & mask) == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// Decodes one μ-law byte to a 16-bit linear sample.
pub const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let sign = u & 0x80;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample to A-law.
pub const fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13-bit magnitudes.
    let pcm = (sample as i32) >> 3;
    let (mask, magnitude) = if pcm >= 0 {
        (0xD5, pcm)
    } else {
        (0x55, -pcm - 1)
    };
    // Segment end points for 13-bit input.
    let seg_end = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut seg = 0;
    while seg < 8 && magnitude > seg_end[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (magnitude >> 1) & 0x0F;
    } else {
        aval |= (magnitude >> seg) & 0x0F;
    }
    (aval ^ mask) as u8
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub const fn alaw_to_linear(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_decode(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match law {
            Law::Mu => ulaw_to_linear(i as u8),
            Law::A => alaw_to_linear(i as u8),
        };
        i += 1;
    }
    table
}

const fn build_transcode(from: Law) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match from {
            Law::Mu => linear_to_alaw(ulaw_to_linear(i as u8)),
            Law::A => linear_to_ulaw(alaw_to_linear(i as u8)),
        };
        i += 1;
    }
    table
}

static ULAW_DECODE: [i16; 256] = build_decode(Law::Mu);
static ALAW_DECODE: [i16; 256] = build_decode(Law::A);
static ULAW_TO_ALAW: [u8; 256] = build_transcode(Law::Mu);
static ALAW_TO_ULAW: [u8; 256] = build_transcode(Law::A);

/// The code word for digital silence in `law` (what a muted sender transmits).
pub const fn silence(law: Law) -> u8 {
    match law {
        Law::Mu => 0xFF,
        Law::A => 0xD5,
    }
}

/// Decodes a payload in `law`, appending one linear sample per byte to `out`.
pub fn decode_into(law: Law, payload: &[u8], out: &mut Vec<i16>) {
    let table = match law {
        Law::Mu => &ULAW_DECODE,
        Law::A => &ALAW_DECODE,
    };
    out.extend(payload.iter().map(|&b| table[usize::from(b)]));
}

/// Decodes one code word.
pub fn decode(law: Law, code: u8) -> i16 {
    match law {
        Law::Mu => ULAW_DECODE[usize::from(code)],
        Law::A => ALAW_DECODE[usize::from(code)],
    }
}

/// Encodes linear samples in `law`, appending one byte per sample to `out`.
pub fn encode_into(law: Law, samples: &[i16], out: &mut Vec<u8>) {
    match law {
        Law::Mu => out.extend(samples.iter().map(|&s| linear_to_ulaw(s))),
        Law::A => out.extend(samples.iter().map(|&s| linear_to_alaw(s))),
    }
}

/// Rewrites a payload from one law to the other in place (one lookup per byte);
/// a no-op when the laws are the same.
pub fn transcode_in_place(from: Law, to: Law, payload: &mut [u8]) {
    let table = match (from, to) {
        (Law::Mu, Law::A) => &ULAW_TO_ALAW,
        (Law::A, Law::Mu) => &ALAW_TO_ULAW,
        _ => return,
    };
    for b in payload {
        *b = table[usize::from(*b)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_code_words() {
        // Values from the G.711 tables.
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn code_words_round_trip() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#x}"
            );
            let back = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7F (negative zero) encodes back as 0xFF (positive zero).
            if code != 0x7F {
                assert_eq!(back, code, "μ-law {code:#x}");
            }
        }
    }

    #[test]
    fn transcoding_keeps_silence_silent() {
        let mut p = [silence(Law::Mu); 4];
        transcode_in_place(Law::Mu, Law::A, &mut p);
        assert!(p.iter().all(|&b| alaw_to_linear(b).abs() <= 8));
    }

    proptest! {
        #[test]
        fn quantisation_error_is_bounded(s in any::<i16>()) {
            // G.711 keeps about 12-13 bits of precision: the error is at most
            // half a step of the segment, which is ≤ 1/32 of the magnitude + a constant.
            let bound = |x: i16| i32::from(x).abs() / 16 + 16;
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let s32 = i32::from(s).clamp(-32635, 32635);
            prop_assert!((u - s32).abs() <= bound(s), "μ {s} -> {u}");
            prop_assert!((a - i32::from(s)).abs() <= bound(s) + 16, "A {s} -> {a}");
        }
    }
}
