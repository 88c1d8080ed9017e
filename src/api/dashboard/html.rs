//! HTML building blocks of the dashboard: escaping, the page frame with its inline
//! style, and the response headers every page carries. Pages are plain strings built
//! with `format!`; every value that came from the store or the request goes through
//! [`html_escape`] (the [`Escaped`] wrapper makes that the short way to write it).

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// Escapes text for HTML element content and for quoted attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Displays its text escaped: `format!("<td>{}</td>", Escaped(&value))`.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&html_escape(self.0))
    }
}

/// Escaped text, or a dash for nothing.
pub fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => html_escape(v),
        _ => "&ndash;".to_owned(),
    }
}

pub fn time(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 2em;max-width:80em;color:#1d1d1f}\
header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:1px solid #ccc}\
header form{display:inline}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em}\
table{border-collapse:collapse;margin:.5em 0}\
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.bad{color:#b00020}.warn{color:#9a5b00}.ok{color:#116611}.muted{color:#666}\
.badge{display:inline-block;padding:0 .4em;border-radius:.3em;background:#eee}\
.error{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.9em}\
tr.current{background:#fffbe6}\
section.rollout{border:1px solid #ddd;border-radius:.4em;padding:0 1em;margin:1em 0}\
form.login label{display:block;margin:1em 0 .3em}form.login input{width:30em;max-width:100%}\
form.action{display:inline-block;margin-right:1em}";

/// The signed-in viewer a page header names.
pub struct Who<'a> {
    pub name: &'a str,
    /// The anti-CSRF token of the session's Log out form; `None` without a session
    /// (a bearer header), when there is nothing to log out of.
    pub logout_token: Option<&'a str>,
}

/// A whole page: `title` is escaped here, `body` is HTML the caller built. With
/// `refresh`, the browser reloads the page every that many seconds.
pub fn page(title: &str, viewer: Option<&Who>, refresh: Option<u32>, body: &str) -> String {
    let refresh = refresh
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    let who = match viewer {
        Some(who) => {
            let logout = who
                .logout_token
                .map(|token| {
                    format!(
                        " <form method=\"post\" action=\"/logout\">\
                         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                         <button type=\"submit\">Log out</button></form>",
                        Escaped(token)
                    )
                })
                .unwrap_or_default();
            format!(
                "<span>signed in as <b id=\"viewer\">{}</b>{logout}</span>",
                Escaped(who.name)
            )
        }
        None => String::new(),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>{title}</title><style>{STYLE}</style></head>\
         <body><header><h1><a href=\"/\">tenantctl</a> &middot; {title}</h1>{who}</header>\n\
         <main>{body}</main></body></html>\n",
        title = Escaped(title)
    )
}

/// An HTML response with the headers every dashboard page carries: never cached
/// (pages show tenant data to an authenticated viewer), never framed, no scripts,
/// forms only to this server.
pub fn respond(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_neutralises_markup_and_attribute_breakouts() {
        assert_eq!(
            html_escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(html_escape("plain text: ünïcode ok"), "plain text: ünïcode ok");
        assert_eq!(
            html_escape("&amp;"),
            "&amp;amp;",
            "already-escaped text is escaped again"
        );
        assert_eq!(Escaped("a<b").to_string(), "a&lt;b");
    }

    #[test]
    fn escaped_text_contains_no_markup_characters() {
        let hostile = "\"><img src=x onerror=alert(1)>'</td>&#x3c;";
        let out = html_escape(hostile);
        assert!(!out.contains(['<', '>', '"', '\'']), "{out}");
    }

    #[test]
    fn the_page_title_and_viewer_are_escaped() {
        let who = Who {
            name: "<i>ops</i>",
            logout_token: Some("tok\"en"),
        };
        let html = page("<b>t</b>", Some(&who), Some(10), "<p>body</p>");
        assert!(html.contains("&lt;b&gt;t&lt;/b&gt;"));
        assert!(html.contains("&lt;i&gt;ops&lt;/i&gt;"));
        assert!(html.contains("<p>body</p>"));
        assert!(html.contains("http-equiv=\"refresh\" content=\"10\""));
        assert!(html.contains("name=\"csrf\" value=\"tok&quot;en\""), "{html}");
        let bearer = Who {
            name: "ops",
            logout_token: None,
        };
        assert!(!page("t", Some(&bearer), None, "").contains("/logout"));
    }

    #[test]
    fn nothing_shows_as_a_dash() {
        assert_eq!(or_dash(None), "&ndash;");
        assert_eq!(or_dash(Some("")), "&ndash;");
        assert_eq!(or_dash(Some("<x>")), "&lt;x&gt;");
    }
}
