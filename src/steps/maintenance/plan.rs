//! The pure part of maintenance: which hostnames share a rule, which priorities the
//! rules take, and the page users see. No AWS.

use crate::domain::Hostname;

/// Host names per rule. An ALB rule takes at most five condition values and a
/// host-header condition at most three; the bypass rule also spends one on its header.
pub const HOSTS_PER_RULE: usize = 3;

/// The fixed-response body users get while the tenant is in maintenance (ALB limit:
/// 1024 bytes).
pub const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\
<body><h1>Down for maintenance</h1><p>This service is being upgraded and will be back in a few minutes.</p></body></html>";

/// Which of the pair a rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Lets requests carrying the upgrade's token through to the tenant.
    Bypass,
    /// Answers everyone else with the maintenance page.
    Page,
}

impl Role {
    pub fn tag(self, chunk: usize) -> String {
        match self {
            Role::Bypass => format!("bypass-{chunk}"),
            Role::Page => format!("page-{chunk}"),
        }
    }
}

/// The tenant's hostnames split into the groups that share one rule pair, in a
/// stable order so a re-run names the same groups.
pub fn chunks(hostnames: &[Hostname]) -> Vec<Vec<String>> {
    let mut names: Vec<String> = hostnames.iter().map(|h| h.to_string()).collect();
    names.sort();
    names.dedup();
    names.chunks(HOSTS_PER_RULE).map(<[String]>::to_vec).collect()
}

/// The lowest priority of `first..=last` that is free and above `above`.
pub fn free_priority(used: &[u32], first: u32, last: u32, above: Option<u32>) -> Option<u32> {
    let start = above.map_or(first, |p| first.max(p + 1));
    (start..=last).find(|p| !used.contains(p))
}

/// Whether an ALB host-header pattern (`*` any run of characters, `?` one character,
/// case-insensitive) matches `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    fn matches(p: &[u8], h: &[u8]) -> bool {
        match (p.first(), h.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], h) || (!h.is_empty() && matches(p, &h[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &h[1..]),
            (Some(a), Some(b)) if a == b => matches(&p[1..], &h[1..]),
            _ => false,
        }
    }
    matches(
        pattern.to_ascii_lowercase().as_bytes(),
        host.to_ascii_lowercase().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_grouped_three_to_a_rule_in_a_stable_order() {
        let hosts: Vec<Hostname> = ["e.example.com", "a.example.com", "c.example.com", "b.example.com"]
            .iter()
            .map(|h| Hostname::parse(h).unwrap())
            .collect();
        assert_eq!(
            chunks(&hosts),
            vec![
                vec!["a.example.com", "b.example.com", "c.example.com"],
                vec!["e.example.com"]
            ]
        );
    }

    #[test]
    fn a_page_rule_takes_a_free_priority_after_its_bypass_rule() {
        assert_eq!(free_priority(&[1, 2, 4], 1, 10, None), Some(3));
        assert_eq!(free_priority(&[1, 2, 4], 1, 10, Some(3)), Some(5));
        assert_eq!(free_priority(&[1, 2], 1, 2, None), None);
    }

    #[test]
    fn host_patterns_match_as_the_load_balancer_matches_them() {
        assert!(host_matches("acme.example.com", "ACME.example.com"));
        assert!(host_matches("*.example.com", "acme.example.com"));
        assert!(host_matches("acm?.example.com", "acme.example.com"));
        assert!(!host_matches("*.example.org", "acme.example.com"));
    }

    #[test]
    fn the_page_fits_a_fixed_response() {
        assert!(PAGE.len() <= 1024);
    }
}
