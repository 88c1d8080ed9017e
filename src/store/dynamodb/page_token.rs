//! Page tokens: the cursor of a listing, sealed with HMAC-SHA256 under a key kept in
//! the table, and bound to the table, the listing and its filters. A token this store
//! did not issue for the same query is refused before anything reaches DynamoDB, so a
//! forged start key can never become a DynamoDB validation error.
//!
//! The key is one random 32-byte item (`pk META`, `sk PAGE_TOKEN_KEY`), created by
//! the first store that needs it with a conditional put and cached in memory, so every
//! replica and the CLI against the same table seal and open the same tokens.

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2_hmac::Sha256;

use super::errors::classify;
use super::item;
use super::item::s;
use super::DynamoStore;
use crate::store::{keys, StoreError};

type HmacSha256 = Hmac<Sha256>;

/// What every refused token is answered with.
pub const NOT_ISSUED: &str = "next_token was not issued for this query; start from the first page";

/// The cached key of one table; shared by the clones of a store.
pub type PageKeyCell = Arc<tokio::sync::OnceCell<[u8; 32]>>;

/// The query a token belongs to: the listing's name and every filter that shapes it.
/// Two queries that could page differently must never have the same scope.
pub struct PageScope<'a> {
    listing: &'static str,
    parts: Vec<&'a str>,
}

impl<'a> PageScope<'a> {
    pub fn new(listing: &'static str) -> Self {
        Self {
            listing,
            parts: Vec::new(),
        }
    }

    /// Adds a filter; an absent one is distinct from every present value.
    pub fn with(mut self, part: Option<&'a str>) -> Self {
        match part {
            Some(p) => {
                self.parts.push("1");
                self.parts.push(p);
            }
            None => self.parts.push("0"),
        }
        self
    }
}

fn refused(context: &str) -> StoreError {
    StoreError::Invalid {
        context: context.to_owned(),
        message: NOT_ISSUED.to_owned(),
    }
}

/// The MAC over table, scope and payload; every field length-prefixed so no two
/// different inputs produce the same byte string.
fn mac(key: &[u8; 32], table: &str, scope: &PageScope<'_>, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    field(table.as_bytes());
    field(scope.listing.as_bytes());
    for part in &scope.parts {
        field(part.as_bytes());
    }
    field(payload);
    mac
}

impl DynamoStore {
    /// The table's page-token key: read once, created if the table has none yet.
    async fn page_key(&self) -> Result<[u8; 32], StoreError> {
        self.page_key
            .get_or_try_init(|| async {
                if let Some(key) = self.read_page_key().await? {
                    return Ok(key);
                }
                let fresh: [u8; 32] = rand::random();
                let put = self
                    .client()
                    .put_item()
                    .table_name(self.table())
                    .item("pk", s(keys::META_PK))
                    .item("sk", s(keys::PAGE_TOKEN_KEY_SK))
                    .item("key", AttributeValue::B(Blob::new(fresh.to_vec())))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                match put {
                    Ok(_) => Ok(fresh),
                    Err(e) => match classify("creating the page token key", self.table(), e) {
                        // Another process created it first: use theirs.
                        StoreError::Conflict { .. } => self.read_page_key().await?.ok_or_else(|| {
                            StoreError::fatal(
                                "reading the page token key",
                                "the key item vanished right after it was created",
                            )
                        }),
                        other => Err(other),
                    },
                }
            })
            .await
            .copied()
    }

    async fn read_page_key(&self) -> Result<Option<[u8; 32]>, StoreError> {
        let item = self
            .read_item(
                item::key(keys::META_PK, keys::PAGE_TOKEN_KEY_SK),
                "reading the page token key",
            )
            .await?;
        match item.as_ref().and_then(|i| i.get("key")) {
            None => Ok(None),
            Some(AttributeValue::B(blob)) => blob.as_ref().try_into().map(Some).map_err(|_| {
                StoreError::fatal(
                    "reading the page token key",
                    format!(
                        "item META/{} holds a key of {} bytes, not 32; delete the item to make a new key",
                        keys::PAGE_TOKEN_KEY_SK,
                        blob.as_ref().len()
                    ),
                )
            }),
            Some(_) => Err(StoreError::fatal(
                "reading the page token key",
                format!(
                    "item META/{} is damaged; delete it to make a new key",
                    keys::PAGE_TOKEN_KEY_SK
                ),
            )),
        }
    }

    /// A token for `cursor` that only [`Self::open_page`] with the same scope accepts.
    pub(super) async fn seal_page<T: Serialize>(
        &self,
        scope: &PageScope<'_>,
        cursor: &T,
    ) -> Result<String, StoreError> {
        let key = self.page_key().await?;
        let payload = serde_json::to_vec(cursor).expect("cursors serialize");
        let tag = mac(&key, self.table(), scope, &payload).finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// The cursor in `token`, if this table issued it for `scope`; `Invalid` otherwise.
    pub(super) async fn open_page<T: DeserializeOwned>(
        &self,
        context: &str,
        scope: &PageScope<'_>,
        token: &str,
    ) -> Result<T, StoreError> {
        let (payload, tag) = token.split_once('.').ok_or_else(|| refused(context))?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| refused(context))?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| refused(context))?;
        let key = self.page_key().await?;
        // `verify_slice` compares in constant time.
        mac(&key, self.table(), scope, &payload)
            .verify_slice(&tag)
            .map_err(|_| refused(context))?;
        serde_json::from_slice(&payload).map_err(|_| refused(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &[u8; 32], table: &str, scope: &PageScope<'_>) -> Vec<u8> {
        mac(key, table, scope, b"{}").finalize().into_bytes().to_vec()
    }

    #[test]
    fn the_tag_depends_on_key_table_listing_and_filters() {
        let key = [7u8; 32];
        let base = tag(&key, "t", &PageScope::new("tenants").with(Some("us-east-1")));
        assert_eq!(
            base,
            tag(&key, "t", &PageScope::new("tenants").with(Some("us-east-1")))
        );
        assert_ne!(
            base,
            tag(
                &[8u8; 32],
                "t",
                &PageScope::new("tenants").with(Some("us-east-1"))
            )
        );
        assert_ne!(
            base,
            tag(&key, "u", &PageScope::new("tenants").with(Some("us-east-1")))
        );
        assert_ne!(
            base,
            tag(&key, "t", &PageScope::new("rollouts").with(Some("us-east-1")))
        );
        assert_ne!(
            base,
            tag(&key, "t", &PageScope::new("tenants").with(Some("eu-west-1")))
        );
        assert_ne!(base, tag(&key, "t", &PageScope::new("tenants").with(None)));
    }

    #[test]
    fn an_absent_filter_differs_from_any_value() {
        let key = [1u8; 32];
        let absent_then_x = tag(&key, "t", &PageScope::new("l").with(None).with(Some("x")));
        let x_then_absent = tag(&key, "t", &PageScope::new("l").with(Some("x")).with(None));
        let zero = tag(&key, "t", &PageScope::new("l").with(Some("0")).with(Some("x")));
        assert_ne!(absent_then_x, x_then_absent);
        assert_ne!(absent_then_x, zero);
    }
}
