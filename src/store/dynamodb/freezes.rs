//! Freeze windows, one item (`pk META`, `sk FREEZES`) holding them all, changed by
//! conditional writes like the version policy, so two operators adding at once both
//! land. The controller reads it once per rollout step.

use super::item;
use super::item::{get_n, get_s, s};
use super::meta::CONFLICT_RETRIES;
use super::DynamoStore;
use crate::domain::Freeze;
use crate::ports::{Entity, FreezeStore};
use crate::store::{keys, StoreError};

const FREEZES_SK: &str = "FREEZES";
/// Freezes kept at most; ended ones are dropped first when a new one would pass it.
const FREEZES_KEPT: usize = 200;

#[async_trait::async_trait]
impl FreezeStore for DynamoStore {
    async fn list_freezes(&self) -> Result<Vec<Freeze>, StoreError> {
        Ok(self.load_freezes_item().await?.0)
    }

    async fn add_freeze(&self, mut freeze: Freeze) -> Result<Freeze, StoreError> {
        freeze.id = format!("f-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        freeze.created_at = chrono::Utc::now();
        let now = freeze.created_at;
        let added = freeze.clone();
        self.change_freezes(move |freezes| {
            freezes.push(freeze.clone());
            freezes.sort_by(|a, b| (a.from, &a.id).cmp(&(b.from, &b.id)));
            while freezes.len() > FREEZES_KEPT {
                match freezes.iter().position(|f| f.until <= now) {
                    Some(i) => {
                        freezes.remove(i);
                    }
                    None => break,
                }
            }
            Ok(())
        })
        .await?;
        Ok(added)
    }

    async fn remove_freeze(&self, id: &str) -> Result<Freeze, StoreError> {
        let mut removed = None;
        self.change_freezes(|freezes| {
            let i = freezes
                .iter()
                .position(|f| f.id == id)
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("freeze {id}"),
                    entity: Entity::Freeze,
                })?;
            removed = Some(freezes.remove(i));
            Ok(())
        })
        .await?;
        Ok(removed.expect("removed when the change succeeded"))
    }
}

impl DynamoStore {
    /// Applies `change` to the stored freezes and writes them back, conditional on
    /// the version read; again from a fresh read when another write came first.
    async fn change_freezes(
        &self,
        mut change: impl FnMut(&mut Vec<Freeze>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            let (mut freezes, version) = self.load_freezes_item().await?;
            change(&mut freezes)?;
            let text = serde_json::to_string(&freezes).expect("freezes serialize");
            let saved = self
                .put_meta_item(
                    FREEZES_SK,
                    [("freezes", s(text))],
                    version,
                    "saving the freeze windows",
                )
                .await;
            match saved {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    async fn load_freezes_item(&self) -> Result<(Vec<Freeze>, u64), StoreError> {
        let Some(item) = self
            .read_item(item::key(keys::META_PK, FREEZES_SK), "loading the freeze windows")
            .await?
        else {
            return Ok((Vec::new(), 0));
        };
        let freezes = serde_json::from_str(get_s(&item, "freezes")?).map_err(|e| {
            StoreError::fatal(
                "loading the freeze windows",
                "the stored freezes could not be decoded",
            )
            .with_source(e)
        })?;
        Ok((freezes, get_n(&item, "version")? as u64))
    }
}
