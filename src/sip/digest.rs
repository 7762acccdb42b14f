//! Digest authentication for SIP (RFC 3261 §22.4, RFC 7616 with RFC 8760's
//! SHA-256 for SIP): challenges, nonces and the verification of credentials.
//!
//! Nonces are stateless: `<issued>.<serial>.<mac>` where the MAC is SHA-256 over a
//! 256-bit key from the operating system's cryptographic RNG (the driver draws it;
//! see [`DigestAuth::new`]), the issue time and a serial number (so no two
//! challenges share a nonce and none can be forged or predicted), so any nonce the
//! engine issued can be checked without a table, and an old one is reported stale
//! (the UA retries without asking its user again).
//! `qop=auth` is required, and replays are refused: the nonce-count a UA sends
//! under a nonce and its cnonce must grow (RFC 7616 §3.4.5; the counts of live nonces are remembered,
//! bounded), and the digest `uri`
//! must be the request's Request-URI (RFC 7616 §3.4.6). A replayed count is
//! answered like a stale nonce, so an honest UA simply retries.
//! Time is passed in; nothing here reads a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::wire::auth::{AuthParams, quote};

/// The hash a challenge asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (RFC 2617; what most softphones still use).
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The `algorithm=` token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// The algorithm a configuration names (`MD5`, `SHA-256`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::from_token(Some(name.trim()))
    }

    fn from_token(token: Option<&str>) -> Option<Self> {
        match token {
            None => Some(Algorithm::Md5),
            Some(t) if t.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(t) if t.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    /// Lower-case hex of the hash of `data`.
    pub fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex(&Sha256::digest(data.as_bytes())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// What a user's digest response is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DigestSecret {
    /// The plain password (a configuration's `[[operator]]` table).
    Password(String),
    /// The stored HA1s, `H(user:realm:password)`, for one realm: the password itself
    /// is never kept.
    Ha1 {
        /// The realm they were made for; a response for another realm cannot match.
        realm: String,
        /// MD5 HA1, lower-case hex.
        md5: String,
        /// SHA-256 HA1, lower-case hex.
        sha256: String,
    },
}

impl DigestSecret {
    /// The HA1 of `username` in `realm` for `algorithm`, if this secret can give it.
    fn ha1(&self, algorithm: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            DigestSecret::Password(password) => {
                Some(algorithm.hex(&format!("{username}:{realm}:{password}")))
            }
            DigestSecret::Ha1 {
                realm: theirs,
                md5,
                sha256,
            } => (theirs == realm).then(|| match algorithm {
                Algorithm::Md5 => md5.to_ascii_lowercase(),
                Algorithm::Sha256 => sha256.to_ascii_lowercase(),
            }),
        }
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No Authorization header, or one with another scheme.
    #[error("no Digest credentials")]
    Missing,
    /// Credentials lack a field the response needs.
    #[error("credentials lack {0}")]
    Incomplete(&'static str),
    /// The realm is not ours.
    #[error("wrong realm")]
    Realm,
    /// An algorithm we do not offer.
    #[error("unsupported algorithm")]
    Algorithm,
    /// The nonce was not issued by us.
    #[error("unknown nonce")]
    Nonce,
    /// The nonce is ours but too old; re-challenge with stale=true.
    #[error("stale nonce")]
    Stale,
    /// The user is unknown or the response does not match the password.
    #[error("wrong user name or password")]
    Mismatch,
    /// The digest `uri` is not the request's Request-URI.
    #[error("digest uri does not match the Request-URI")]
    Uri,
    /// A nonce-count already seen for this nonce: a replay (re-challenged stale).
    #[error("nonce count replayed")]
    Replay,
    /// Credentials without `qop=auth`: the nonce-count and cnonce that stop
    /// replays are required (RFC 7616 §3.4).
    #[error("qop=auth is required")]
    Qop,
}

/// Nonces whose counts are remembered at most (the oldest are forgotten first;
/// a forgotten nonce is then only accepted with a count above any seen).
const MAX_TRACKED_NONCES: usize = 4096;

/// Issues challenges and checks credentials for one realm.
#[derive(Debug, Clone)]
pub struct DigestAuth {
    realm: String,
    algorithms: Vec<Algorithm>,
    secret: String,
    epoch: Instant,
    nonce_lifetime: Duration,
    /// Challenges issued so far (each nonce's serial).
    serial: u64,
    /// The highest nonce-count accepted per nonce and cnonce (with the nonce's
    /// issue time).
    counts: HashMap<String, (u64, u32)>,
}

impl DigestAuth {
    /// An authenticator for `realm` offering SHA-256 then MD5; `secret` keys the
    /// nonces: the engine passes [`random_key`], drawn from the operating system's
    /// cryptographic RNG at start (tests may pass anything).
    pub fn new(realm: &str, secret: &str, epoch: Instant) -> Self {
        Self {
            realm: realm.to_owned(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            secret: secret.to_owned(),
            epoch,
            nonce_lifetime: Duration::from_secs(300),
            serial: 0,
            counts: HashMap::new(),
        }
    }

    /// The same authenticator offering `algorithms`, in this order (ignored when
    /// empty).
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        if !algorithms.is_empty() {
            self.algorithms = algorithms.to_vec();
        }
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn nonce_at(&self, issued: u64, serial: u64) -> String {
        let mac =
            Algorithm::Sha256.hex(&format!("{}:{issued}:{serial}:{}", self.secret, self.realm));
        format!("{issued:x}.{serial:x}.{}", &mac[..32])
    }

    /// WWW-Authenticate values, one per offered algorithm in order of preference
    /// (RFC 8760 §2.4: a UA uses the first it supports).
    pub fn challenges(&mut self, now: Instant, stale: bool) -> Vec<String> {
        let issued = now.saturating_duration_since(self.epoch).as_secs();
        self.serial = self.serial.wrapping_add(1);
        let nonce = self.nonce_at(issued, self.serial);
        self.algorithms
            .iter()
            .map(|alg| {
                let mut c = format!(
                    "Digest realm={}, nonce={}, algorithm={}, qop=\"auth\"",
                    quote(&self.realm),
                    quote(&nonce),
                    alg.token()
                );
                if stale {
                    c.push_str(", stale=true");
                }
                c
            })
            .collect()
    }

    /// Checks an Authorization value of a `method` request to `request_uri`
    /// against the secret `secret_of` gives for its user name (a password, or the
    /// stored HA1s). Returns the authenticated user name.
    pub fn verify(
        &mut self,
        now: Instant,
        method: &str,
        request_uri: &str,
        authorization: Option<&str>,
        secret_of: impl Fn(&str) -> Option<DigestSecret>,
    ) -> Result<String, DigestError> {
        let creds = authorization
            .and_then(AuthParams::parse)
            .filter(AuthParams::is_digest)
            .ok_or(DigestError::Missing)?;
        let field = |name: &'static str| creds.get(name).ok_or(DigestError::Incomplete(name));
        let username = field("username")?;
        if field("realm")? != self.realm {
            return Err(DigestError::Realm);
        }
        let algorithm = Algorithm::from_token(creds.get("algorithm"))
            .filter(|a| self.algorithms.contains(a))
            .ok_or(DigestError::Algorithm)?;
        let nonce = field("nonce")?;
        let uri = field("uri")?;
        let response = field("response")?;
        if creds.get("qop") != Some("auth") {
            return Err(DigestError::Qop);
        }
        let nc = field("nc")?;
        let cnonce = field("cnonce")?;
        let count = u32::from_str_radix(nc, 16).map_err(|_| DigestError::Incomplete("nc"))?;
        let same_uri = uri == request_uri
            || matches!(
                (super::wire::Uri::parse(uri), super::wire::Uri::parse(request_uri)),
                (Ok(a), Ok(b)) if a.same_address(&b)
            );
        if !same_uri {
            return Err(DigestError::Uri);
        }
        let mut parts = nonce.splitn(3, '.');
        let (Some(issued), Some(serial)) = (
            parts.next().and_then(|t| u64::from_str_radix(t, 16).ok()),
            parts.next().and_then(|t| u64::from_str_radix(t, 16).ok()),
        ) else {
            return Err(DigestError::Nonce);
        };
        if self.nonce_at(issued, serial) != nonce {
            return Err(DigestError::Nonce);
        }
        let ha1 = secret_of(username)
            .and_then(|secret| secret.ha1(algorithm, username, &self.realm))
            .ok_or(DigestError::Mismatch)?;
        let ha2 = algorithm.hex(&format!("{method}:{uri}"));
        let expected = algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        if !constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(DigestError::Mismatch);
        }
        let elapsed = now.saturating_duration_since(self.epoch).as_secs();
        let age = elapsed.saturating_sub(issued);
        if age > self.nonce_lifetime.as_secs() {
            return Err(DigestError::Stale);
        }
        // Each UA counts its own requests under its cnonce.
        self.accept_count(&format!("{nonce}:{cnonce}"), issued, count, elapsed)?;
        Ok(username.to_owned())
    }

    /// Remembers `count` for `key` (nonce and cnonce), refusing one not above the
    /// last accepted.
    fn accept_count(
        &mut self,
        key: &str,
        issued: u64,
        count: u32,
        elapsed: u64,
    ) -> Result<(), DigestError> {
        if let Some((_, last)) = self.counts.get(key) {
            if count <= *last {
                return Err(DigestError::Replay);
            }
        }
        let lifetime = self.nonce_lifetime.as_secs();
        if self.counts.len() >= MAX_TRACKED_NONCES {
            // Forget lapsed nonces first, then the oldest.
            self.counts
                .retain(|_, (at, _)| elapsed.saturating_sub(*at) <= lifetime);
            if self.counts.len() >= MAX_TRACKED_NONCES {
                if let Some(oldest) = self
                    .counts
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(n, _)| n.clone())
                {
                    self.counts.remove(&oldest);
                }
            }
        }
        self.counts.insert(key.to_owned(), (issued, count));
        Ok(())
    }
}

/// A fresh 256-bit nonce key, hex, from the operating system's cryptographic RNG.
/// `None` only if the OS has no randomness to give (the caller must not start).
pub fn random_key() -> Option<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).ok()?;
    Some(hex(&key))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds the Authorization value a UA sends in answer to `challenge` (used by the
/// engine towards providers, and by tests and the softphone simulator).
pub fn answer(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    cnonce: &str,
) -> Option<String> {
    let c = AuthParams::parse(challenge).filter(AuthParams::is_digest)?;
    let realm = c.get("realm")?;
    let nonce = c.get("nonce")?;
    let algorithm = Algorithm::from_token(c.get("algorithm"))?;
    let ha1 = algorithm.hex(&format!("{user}:{realm}:{password}"));
    let ha2 = algorithm.hex(&format!("{method}:{uri}"));
    let qop_auth = c
        .get("qop")
        .is_some_and(|q| q.split(',').any(|t| t.trim() == "auth"));
    let mut out = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, algorithm={}",
        quote(user),
        quote(realm),
        quote(nonce),
        quote(uri),
        algorithm.token()
    );
    if qop_auth {
        let nc = "00000001";
        let response = algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
        out.push_str(&format!(
            ", response={}, qop=auth, nc={nc}, cnonce={}",
            quote(&response),
            quote(cnonce)
        ));
    } else {
        let response = algorithm.hex(&format!("{ha1}:{nonce}:{ha2}"));
        out.push_str(&format!(", response={}", quote(&response)));
    }
    if let Some(opaque) = c.get("opaque") {
        out.push_str(&format!(", opaque={}", quote(opaque)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_md5_example() {
        // RFC 2617 §3.5's example values.
        let ha1 = Algorithm::Md5.hex("Mufasa:testrealm@host.com:Circle Of Life");
        assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
    }

    #[test]
    fn a_ua_answer_verifies_with_both_algorithms() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("dispatchline", "s3cret", t0);
        let pw = |u: &str| (u == "1001").then(|| DigestSecret::Password("pa55".to_owned()));
        for i in 0..2 {
            // A fresh nonce for each algorithm (every challenge has its own).
            let challenge = auth.challenges(t0, false)[i].clone();
            let a = answer(
                &challenge,
                "REGISTER",
                "sip:127.0.0.1",
                "1001",
                "pa55",
                "cn",
            )
            .unwrap();
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:127.0.0.1", Some(&a), pw),
                Ok("1001".into()),
                "{challenge}"
            );
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:127.0.0.1", Some(&a), pw),
                Err(DigestError::Replay),
                "the same nonce-count twice is a replay"
            );
            let wrong = answer(
                &challenge,
                "REGISTER",
                "sip:127.0.0.1",
                "1001",
                "nope",
                "cn",
            )
            .unwrap();
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:127.0.0.1", Some(&wrong), pw),
                Err(DigestError::Mismatch)
            );
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:192.0.2.9", Some(&a), pw),
                Err(DigestError::Uri),
                "credentials computed for another Request-URI"
            );
            let later = t0 + Duration::from_secs(301);
            assert_eq!(
                auth.verify(later, "REGISTER", "sip:127.0.0.1", Some(&a), pw),
                Err(DigestError::Stale)
            );
        }
    }

    #[test]
    fn stored_ha1s_verify_like_the_password_and_only_in_their_realm() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("dispatchline", "s3cret", t0);
        let ha1 = |realm: &str| DigestSecret::Ha1 {
            realm: realm.to_owned(),
            md5: Algorithm::Md5.hex(&format!("1001:{realm}:pa55")),
            sha256: Algorithm::Sha256.hex(&format!("1001:{realm}:pa55")),
        };
        for i in 0..2 {
            let challenge = auth.challenges(t0, false)[i].clone();
            let a = answer(&challenge, "REGISTER", "sip:x", "1001", "pa55", "c").unwrap();
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:x", Some(&a), |_| Some(ha1(
                    "dispatchline"
                ))),
                Ok("1001".into()),
                "{challenge}"
            );
            let challenge = auth.challenges(t0, false)[i].clone();
            let a = answer(&challenge, "REGISTER", "sip:x", "1001", "pa55", "c").unwrap();
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:x", Some(&a), |_| Some(ha1(
                    "elsewhere"
                ))),
                Err(DigestError::Mismatch),
                "HA1s of another realm cannot match"
            );
        }
    }

    #[test]
    fn two_uas_challenged_at_once_with_the_same_cnonce_are_both_accepted() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("dispatchline", "s3cret", t0);
        let pw = |_: &str| Some(DigestSecret::Password("pa55".to_owned()));
        let first = auth.challenges(t0, false).remove(0);
        let second = auth.challenges(t0, false).remove(0);
        assert_ne!(first, second, "every challenge has its own nonce");
        for (c, user) in [(first, "1001"), (second, "1002")] {
            // SIPp, for one, sends the same cnonce and nc every time.
            let a = answer(&c, "REGISTER", "sip:x", user, "pa55", "same").unwrap();
            assert_eq!(
                auth.verify(t0, "REGISTER", "sip:x", Some(&a), pw),
                Ok(user.to_owned())
            );
        }
    }

    #[test]
    fn credentials_without_qop_are_refused_unchecked() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("dispatchline", &random_key().unwrap(), t0);
        let challenge = auth.challenges(t0, false).remove(0);
        let without = challenge.replace(", qop=\"auth\"", "");
        assert_ne!(without, challenge);
        let a = answer(&without, "REGISTER", "sip:x", "1001", "pa55", "cn").unwrap();
        let pw = |_: &str| Some(DigestSecret::Password("pa55".to_owned()));
        assert_eq!(
            auth.verify(t0, "REGISTER", "sip:x", Some(&a), pw),
            Err(DigestError::Qop)
        );
        assert_ne!(random_key(), random_key());
    }

    #[test]
    fn foreign_nonces_and_schemes_are_refused() {
        let t0 = Instant::now();
        let mut auth = DigestAuth::new("dispatchline", "s3cret", t0);
        let mut other = DigestAuth::new("dispatchline", "other", t0);
        let challenge = &other.challenges(t0, false)[0];
        let a = answer(challenge, "REGISTER", "sip:x", "1001", "pa55", "cn").unwrap();
        let pw = |_: &str| Some(DigestSecret::Password("pa55".to_owned()));
        assert_eq!(
            auth.verify(t0, "REGISTER", "sip:x", Some(&a), pw),
            Err(DigestError::Nonce)
        );
        assert_eq!(
            auth.verify(
                t0,
                "REGISTER",
                "sip:x",
                Some("NoOneKnowsThisScheme opaque-data=here"),
                pw
            ),
            Err(DigestError::Missing)
        );
        assert_eq!(
            auth.verify(t0, "REGISTER", "sip:x", None, pw),
            Err(DigestError::Missing)
        );
    }
}
