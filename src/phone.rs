//! Phone numbers as residents, staff and providers write them.
//!
//! Owns the one normalisation every part of the engine uses to compare numbers: the
//! Request-URI user part of an incoming call, the caller's From user, a contacts CSV
//! row and a configured `[[number]]` all meet here. Russian 11-digit numbers written
//! as `+7…`, `7…` or `8…` become E.164 (`+7…`); punctuation used by people (spaces,
//! dashes, parentheses, dots) is dropped; anything else (short numbers, extensions,
//! foreign E.164) is kept as written.

use std::fmt;

/// A phone number after normalisation; compare these, never raw strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl<'de> serde::Deserialize<'de> for PhoneNumber {
    /// Stored and transmitted numbers are normalised again on the way in: a number
    /// is never trusted to be normalised because it was once.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// Nothing but punctuation was given.
    #[error("empty phone number")]
    Empty,
    /// A character that is neither a digit, `+` at the start, nor punctuation.
    #[error("unexpected character {0:?} in phone number")]
    BadCharacter(char),
    /// Longer than E.164 allows (15 digits).
    #[error("phone number has more than 15 digits")]
    TooLong,
}

impl PhoneNumber {
    /// Normalises `raw` (see the module doc).
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let mut digits = String::with_capacity(raw.len());
        let mut plus = false;
        for (i, c) in raw.trim().chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                ' ' | '-' | '(' | ')' | '.' | '\u{a0}' => {}
                other => return Err(PhoneError::BadCharacter(other)),
            }
        }
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if digits.len() > 15 {
            return Err(PhoneError::TooLong);
        }
        let normalised =
            if digits.len() == 11 && (digits.starts_with('7') || digits.starts_with('8')) {
                format!("+7{}", &digits[1..])
            } else if plus {
                format!("+{digits}")
            } else {
                digits
            };
        Ok(Self(normalised))
    }

    /// The normalised text (`+73432000001`, `100`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a full E.164 number rather than a short one.
    pub fn is_e164(&self) -> bool {
        self.0.starts_with('+')
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_formats_become_e164() {
        for raw in [
            "+73432000001",
            "73432000001",
            "83432000001",
            "8 (343) 200-00-01",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw).unwrap().as_str(),
                "+73432000001",
                "{raw}"
            );
        }
    }

    #[test]
    fn short_and_foreign_numbers_are_kept() {
        assert_eq!(PhoneNumber::parse("100").unwrap().as_str(), "100");
        assert_eq!(
            PhoneNumber::parse("+4930123456").unwrap().as_str(),
            "+4930123456"
        );
        // Ten digits starting with 8 is not a Russian trunk-prefixed number.
        assert_eq!(
            PhoneNumber::parse("8001234567").unwrap().as_str(),
            "8001234567"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("12a"),
            Err(PhoneError::BadCharacter('a'))
        );
        assert_eq!(
            PhoneNumber::parse("1+2"),
            Err(PhoneError::BadCharacter('+'))
        );
        assert_eq!(
            PhoneNumber::parse("1234567890123456"),
            Err(PhoneError::TooLong)
        );
    }
}
