//! Defences of the dashboard's forms (`POST /login`, `POST /logout` and the rollout
//! actions `POST /rollouts/{id}/{action}`) against cross-site requests: a browser's
//! own `Sec-Fetch-Site` and `Origin` headers must say the form came from a page of
//! this server, and each form carries a token a foreign page cannot know. Sign-in has
//! no session yet, so its token is a double submit (a random value in a cookie and in
//! the form); sign-out's and each rollout action's are derived from the session id
//! (and the action and rollout), so they need no storage and tell nothing about the id.

use axum::http::HeaderMap;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh random value of 256 bits, base64url: session ids and sign-in tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `text` has the shape of a [`random_token`] (so junk is never looked up).
pub fn looks_random(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// SHA-256 of `parts` joined, as hex.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The anti-CSRF token of the sign-out form of session `id`.
pub fn logout_token(session_id: &str) -> String {
    sha256_hex(&[b"tenantctl logout form\0", session_id.as_bytes()])
}

/// The anti-CSRF token of the form that does `action` to rollout `rollout` in session
/// `id`: a token taken from one form does nothing for another action or rollout.
pub fn rollout_form_token(session_id: &str, action: &str, rollout: &str) -> String {
    sha256_hex(&[
        b"tenantctl rollout form\0",
        session_id.as_bytes(),
        b"\0",
        action.as_bytes(),
        b"\0",
        rollout.as_bytes(),
    ])
}

/// The anti-CSRF token of a tenant action form: like [`rollout_form_token`], under its
/// own label, so a rollout form's token never passes for a tenant's.
pub fn tenant_form_token(session_id: &str, action: &str, tenant: &str) -> String {
    sha256_hex(&[
        b"tenantctl tenant form\0",
        session_id.as_bytes(),
        b"\0",
        action.as_bytes(),
        b"\0",
        tenant.as_bytes(),
    ])
}

/// Whether a submitted form token equals the expected one (in constant time).
pub fn tokens_match(submitted: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(submitted.as_bytes().ct_eq(expected.as_bytes()))
}

/// Why a form post looks cross-site, or `None` when it may come from this server's
/// own page. Browsers send `Sec-Fetch-Site` and `Origin` with a POST; clients that
/// are not browsers send neither and are held off by the form tokens instead.
/// `Sec-Fetch-Site` decides where it is sent (no page can set it): a same-origin post
/// from a page with `Referrer-Policy: no-referrer`, as the dashboard's are, comes
/// with `Origin: null`. Browsers without it are judged by `Origin`.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(site) = header("sec-fetch-site") {
        return (!matches!(site, "same-origin" | "none"))
            .then(|| format!("the browser says the form came from a {site} page"));
    }
    if let Some(origin) = header("origin") {
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        let first = |name: &str| header(name).and_then(|v| v.split(',').next()).map(str::trim);
        let ours = [first("host"), first("x-forwarded-host")];
        let same = authority.is_some_and(|a| ours.iter().flatten().any(|h| h.eq_ignore_ascii_case(a)));
        if !same {
            return Some(format!("the form came from {origin}, not from this server"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn random_tokens_are_256_bits_and_differ() {
        let a = random_token();
        let b = random_token();
        assert!(looks_random(&a) && looks_random(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!looks_random("short"));
        assert!(!looks_random(&format!("{}=", &a[..42])));
    }

    #[test]
    fn the_logout_token_is_bound_to_the_session_and_hides_it() {
        let id = random_token();
        let token = logout_token(&id);
        assert_eq!(token, logout_token(&id));
        assert_ne!(token, logout_token(&random_token()));
        assert!(!token.contains(&id));
        assert!(tokens_match(&token, &logout_token(&id)));
        assert!(!tokens_match("", ""), "an empty token never matches");
        assert!(!tokens_match("abc", "abd"));
    }

    #[test]
    fn a_rollout_form_token_is_bound_to_the_session_action_and_rollout() {
        let id = random_token();
        let token = rollout_form_token(&id, "pause", "r-1");
        assert_eq!(token, rollout_form_token(&id, "pause", "r-1"));
        assert_ne!(token, rollout_form_token(&id, "abort", "r-1"));
        assert_ne!(token, rollout_form_token(&id, "pause", "r-2"));
        assert_ne!(token, rollout_form_token(&random_token(), "pause", "r-1"));
        assert_ne!(token, logout_token(&id));
        assert!(!token.contains(&id));
    }

    #[test]
    fn same_origin_posts_and_non_browser_clients_pass() {
        assert_eq!(cross_site(&HeaderMap::new()), None);
        assert_eq!(
            cross_site(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin"),
            ])),
            None
        );
        assert_eq!(
            cross_site(&headers(&[
                ("host", "tenantctl:8080"),
                ("x-forwarded-host", "ops.example.com"),
                ("origin", "https://ops.example.com"),
            ])),
            None,
            "behind a proxy the forwarded host counts"
        );
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "none")])), None);
        assert_eq!(
            cross_site(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
            ])),
            None,
            "Chromium's post from a no-referrer page"
        );
    }

    #[test]
    fn cross_site_posts_are_named() {
        let foreign = cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
        ]));
        assert!(foreign.unwrap().contains("https://evil.example"));
        for site in ["cross-site", "same-site"] {
            let h = headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", site),
            ]);
            assert!(cross_site(&h).is_some(), "{site}");
        }
        assert!(cross_site(&headers(&[("host", "a"), ("origin", "null")])).is_some());
        assert!(cross_site(&headers(&[("origin", "http://127.0.0.1:8080")])).is_some());
    }
}
