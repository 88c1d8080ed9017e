//! HTML building blocks of the dashboard: the page frame with its inline style, and
//! the response headers every page carries. Pages are built with `maud`'s `html!`,
//! which escapes every value it splices in; the only unescaped text is the style
//! sheet below, a constant of this file.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

/// Text, or a dash for nothing.
pub fn or_dash(value: Option<&str>) -> Markup {
    html! {
        @match value {
            Some(v) if !v.is_empty() => (v),
            _ => "\u{2013}",
        }
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

/// A whole page titled `title`, with `body` inside its `<main>`. With `refresh`, the
/// browser reloads the page every that many seconds.
pub fn page(title: &str, viewer: Option<&Who>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) }
                style { (PreEscaped(STYLE)) (PreEscaped(super::fleet_html::STYLE)) (PreEscaped(super::rollout_page::STYLE)) }
            }
            body {
                header {
                    h1 { a href="/" { "tenantctl" } " \u{b7} " (title) }
                    @if let Some(who) = viewer {
                        span {
                            "signed in as " b #viewer { (who.name) }
                            @if let Some(token) = who.logout_token {
                                " "
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(token);
                                    button type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An HTML response with the headers every dashboard page carries: never cached
/// (pages show tenant data to an authenticated viewer), never framed, no scripts,
/// forms only to this server.
pub fn respond(status: StatusCode, html: Markup) -> Response {
    let mut response = (status, html.into_string()).into_response();
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
    fn the_page_title_and_viewer_are_escaped() {
        let who = Who {
            name: "<i>ops</i>",
            logout_token: Some("tok\"en"),
        };
        let html = page("<b>t</b>", Some(&who), Some(10), html! { p { "body" } }).into_string();
        assert!(html.contains("&lt;b&gt;t&lt;/b&gt;"));
        assert!(html.contains("&lt;i&gt;ops&lt;/i&gt;"));
        assert!(html.contains("<p>body</p>"));
        assert!(html.contains("http-equiv=\"refresh\" content=\"10\""));
        assert!(html.contains("name=\"csrf\" value=\"tok&quot;en\""), "{html}");
        let bearer = Who {
            name: "ops",
            logout_token: None,
        };
        assert!(!page("t", Some(&bearer), None, html! {})
            .into_string()
            .contains("/logout"));
    }

    #[test]
    fn hostile_text_is_spliced_in_without_markup() {
        let hostile = "\"><img src=x onerror=alert(1)>'</td>&#x3c;";
        let out = html! { td title=(hostile) { (hostile) } }.into_string();
        assert_eq!(
            out,
            "<td title=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;'&lt;/td&gt;&amp;#x3c;\">\
             &quot;&gt;&lt;img src=x onerror=alert(1)&gt;'&lt;/td&gt;&amp;#x3c;</td>"
        );
    }

    #[test]
    fn nothing_shows_as_a_dash() {
        assert_eq!(or_dash(None).into_string(), "\u{2013}");
        assert_eq!(or_dash(Some("")).into_string(), "\u{2013}");
        assert_eq!(or_dash(Some("<x>")).into_string(), "&lt;x&gt;");
    }
}
