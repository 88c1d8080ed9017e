//! The dashboard end to end: the router on 127.0.0.1:0 against a fresh table on the
//! local DynamoDB; its pages read over HTTP (sign-in, escaping, content) and in
//! headless Chromium (a person signing in and seeing the fleet and a rollout); the
//! rollout actions a deploy session posts from the overview and from a rollout's
//! timeline page, and the forged ones.

mod api_support;
mod browser_support;
mod common;
mod rollout_support;

#[path = "dashboard/actions.rs"]
mod actions;
#[path = "dashboard/browser.rs"]
mod browser;
#[path = "dashboard/browser_rollout.rs"]
mod browser_rollout;
#[path = "dashboard/pages.rs"]
mod pages;
#[path = "dashboard/rollout_page.rs"]
mod rollout_page;
#[path = "dashboard/scopes.rs"]
mod scopes;
#[path = "dashboard/sessions.rs"]
mod sessions;
#[path = "dashboard/support.rs"]
mod support;
#[path = "dashboard/tenant_timeline.rs"]
mod tenant_timeline;
