//! Stripe's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…]`,
//! each `v1` an HMAC-SHA256 of `"{t}.{raw body}"` keyed with an endpoint secret (the
//! whole `whsec_…` string). Any `v1` matching any configured secret passes, so a
//! secret can be rolled; `v0` (test-mode legacy) and unknown schemes are ignored.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2_hmac::Sha256;

use super::config::EndpointSecret;

/// Why a delivery is not accepted as Stripe's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header; Stripe signs every webhook, so this request is not from Stripe")]
    Missing,
    #[error("the Stripe-Signature header is malformed ({0}); expected t=<unix seconds>,v1=<hex signature>")]
    Malformed(&'static str),
    #[error("no v1 signature matches an endpoint secret; check that the intake file's secret is this endpoint's signing secret")]
    Mismatch,
    #[error("the signature's timestamp is {age_seconds}s from now, more than the tolerance of {tolerance_seconds}s; the delivery is stale or replayed")]
    Stale {
        age_seconds: i64,
        tolerance_seconds: u64,
    },
}

/// The HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`, as Stripe writes it.
pub fn sign(secret: &EndpointSecret, timestamp: i64, body: &[u8]) -> String {
    mac(secret, timestamp, body)
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `None` unless `text` is an even number of hex digits.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn mac(secret: &EndpointSecret, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks `header` over `body` against `secrets` at `now`: a matching signature first
/// (a stale but genuine timestamp is reported as stale, a forged one as a mismatch),
/// then the timestamp within `tolerance` either way.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[EndpointSecret],
    tolerance: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("a part without '='"))?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed("t is not a number"))?,
                )
            }
            "v1" => signatures.push(decode_hex(value).ok_or(SignatureError::Malformed("v1 is not hex"))?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t="))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1="));
    }
    let matches = secrets.iter().any(|secret| {
        signatures
            .iter()
            // `verify_slice` compares in constant time.
            .any(|s| mac(secret, timestamp, body).verify_slice(s).is_ok())
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age_seconds = now.timestamp() - timestamp;
    if age_seconds.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::Stale {
            age_seconds,
            tolerance_seconds: tolerance.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TOLERANCE: Duration = Duration::from_secs(300);

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_signature_is_the_hmac_openssl_computes() {
        // Computed independently: printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
        let secret = EndpointSecret::new("whsec_test");
        assert_eq!(
            sign(&secret, 1_700_000_000, br#"{"id":"evt_1"}"#),
            "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
    }

    #[test]
    fn any_v1_under_any_secret_passes_within_the_tolerance() {
        let (old, new) = (EndpointSecret::new("whsec_old"), EndpointSecret::new("whsec_new"));
        let body = br#"{"id":"evt_1"}"#;
        let header = format!(
            "t=1000,v1={},v1={},v0=abc",
            sign(&old, 1000, body),
            "00".repeat(32)
        );
        assert_eq!(
            verify(Some(&header), body, &[new.clone(), old], TOLERANCE, at(1200)),
            Ok(())
        );
        assert_eq!(
            verify(Some(&header), body, &[new], TOLERANCE, at(1200)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_body_missing_header_or_old_timestamp_is_refused() {
        let secret = EndpointSecret::new("whsec_test");
        let body = br#"{"id":"evt_1"}"#;
        let header = format!("t=1000,v1={}", sign(&secret, 1000, body));
        let secrets = [secret];
        assert_eq!(
            verify(Some(&header), br#"{"id":"evt_2"}"#, &secrets, TOLERANCE, at(1000)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(None, body, &secrets, TOLERANCE, at(1000)),
            Err(SignatureError::Missing)
        );
        assert!(matches!(
            verify(Some("v1=zz"), body, &secrets, TOLERANCE, at(1000)),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some(&header), body, &secrets, TOLERANCE, at(1301)),
            Err(SignatureError::Stale { age_seconds: 301, .. })
        ));
        assert!(matches!(
            verify(Some(&header), body, &secrets, TOLERANCE, at(699)),
            Err(SignatureError::Stale {
                age_seconds: -301,
                ..
            })
        ));
        assert_eq!(verify(Some(&header), body, &secrets, TOLERANCE, at(1300)), Ok(()));
    }
}
