//! The table definition kept in `state/table.json`, and creating the table from it.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexDescription, GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_dynamodb::Client;
use serde::Deserialize;

/// The definition, compiled in so the binary needs no file at run time.
pub const TABLE_DEFINITION: &str = include_str!("../../state/table.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    attribute_definitions: Vec<Attr>,
    key_schema: Vec<Key>,
    global_secondary_indexes: Vec<Index>,
    point_in_time_recovery: bool,
    /// Items carrying this attribute (epoch seconds) are deleted by DynamoDB after it.
    #[serde(default)]
    time_to_live_attribute: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attr {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Key {
    attribute_name: String,
    key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Index {
    index_name: String,
    key_schema: Vec<Key>,
    projection: Proj,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Proj {
    projection_type: String,
    #[serde(default)]
    non_key_attributes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("state/table.json is not a valid table definition: {0}")]
    Definition(String),
    #[error("could not create table {table}: {message}")]
    Create { table: String, message: String },
    #[error(
        "could not describe table {table}: {message}; check that it exists and the credentials may read it"
    )]
    Describe { table: String, message: String },
    #[error("table {table} did not become ACTIVE within {seconds}s; check it with `aws dynamodb describe-table --table-name {table}`")]
    NotActive { table: String, seconds: u64 },
}

/// What `ensure_table` did.
#[derive(Debug, PartialEq, Eq)]
pub enum TableOutcome {
    Created,
    AlreadyExisted,
}

fn keys(keys: &[Key]) -> Result<Vec<KeySchemaElement>, TableError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| TableError::Definition(e.to_string()))
        })
        .collect()
}

fn attribute_definitions(def: &Definition) -> Result<Vec<AttributeDefinition>, TableError> {
    (def.attribute_definitions.iter())
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(|e| TableError::Definition(e.to_string()))
        })
        .collect()
}

fn global_index(index: &Index) -> Result<GlobalSecondaryIndex, TableError> {
    let projection = Projection::builder()
        .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
        .set_non_key_attributes(if index.projection.non_key_attributes.is_empty() {
            None
        } else {
            Some(index.projection.non_key_attributes.clone())
        })
        .build();
    GlobalSecondaryIndex::builder()
        .index_name(&index.index_name)
        .set_key_schema(Some(keys(&index.key_schema)?))
        .projection(projection)
        .build()
        .map_err(|e| TableError::Definition(e.to_string()))
}

/// Creates the table if it does not exist and waits until it is ACTIVE; on an existing
/// table, adds back an index that is missing (one deleted to be recreated with a
/// wider projection: see [`index_gaps`]); DynamoDB then builds it in the background.
/// Safe to run any number of times.
pub async fn ensure_table(client: &Client, table: &str) -> Result<TableOutcome, TableError> {
    let def: Definition =
        serde_json::from_str(TABLE_DEFINITION).map_err(|e| TableError::Definition(e.to_string()))?;
    let create_error = |message: String| TableError::Create {
        table: table.to_owned(),
        message,
    };
    if client.describe_table().table_name(table).send().await.is_ok() {
        wait_active(client, table).await?;
        ensure_ttl(client, table, def.time_to_live_attribute.as_deref()).await;
        add_missing_indexes(client, table, &def).await?;
        return Ok(TableOutcome::AlreadyExisted);
    }
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&def.key_schema)?));
    request = request.set_attribute_definitions(Some(attribute_definitions(&def)?));
    for index in &def.global_secondary_indexes {
        request = request.global_secondary_indexes(global_index(index)?);
    }
    match request.send().await {
        Ok(_) => {}
        // Another process created it between our describe and create.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) =>
        {
            wait_active(client, table).await?;
            ensure_ttl(client, table, def.time_to_live_attribute.as_deref()).await;
            return Ok(TableOutcome::AlreadyExisted);
        }
        Err(e) => {
            return Err(create_error(
                aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
            ))
        }
    }
    wait_active(client, table).await?;
    ensure_ttl(client, table, def.time_to_live_attribute.as_deref()).await;
    if def.point_in_time_recovery {
        let pitr = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|e| TableError::Definition(e.to_string()))?;
        if let Err(e) = client
            .update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(pitr)
            .send()
            .await
        {
            let reason = e
                .as_service_error()
                .and_then(|s| s.meta().code())
                .unwrap_or("request failed")
                .to_owned();
            tracing::warn!(
                table,
                reason,
                "point-in-time recovery could not be enabled; enable it on the table by hand"
            );
        }
    }
    Ok(TableOutcome::Created)
}

/// Turns on expiry by `attribute` unless it is on already. A failure only warns: the
/// items that carry the attribute (API idempotency keys) then stay until removed by hand.
async fn ensure_ttl(client: &Client, table: &str, attribute: Option<&str>) {
    let Some(attribute) = attribute else { return };
    let enabled = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .ok()
        .and_then(|o| o.time_to_live_description().cloned())
        .is_some_and(|d| {
            d.attribute_name() == Some(attribute)
                && matches!(
                    d.time_to_live_status(),
                    Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                )
        });
    if enabled {
        return;
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build();
    let result = match spec {
        Ok(spec) => client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = result {
        tracing::warn!(table, attribute, %reason, "time to live could not be enabled; enable it on the table by hand");
    }
}

/// Creates each index of the definition the table lacks, one request each (DynamoDB
/// takes one new index per update). It does not wait for DynamoDB to build them.
async fn add_missing_indexes(client: &Client, table: &str, def: &Definition) -> Result<(), TableError> {
    let missing: Vec<&Index> = (index_gaps(client, table).await?.into_iter())
        .filter(|gap| gap.index_missing)
        .filter_map(|gap| {
            def.global_secondary_indexes
                .iter()
                .find(|i| i.index_name == gap.index)
        })
        .collect();
    for index in missing {
        wait_index_gone(client, table, &index.index_name).await?;
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(&index.index_name)
            .set_key_schema(Some(keys(&index.key_schema)?))
            .projection(
                global_index(index)?
                    .projection()
                    .cloned()
                    .expect("projection set"),
            )
            .build()
            .map_err(|e| TableError::Definition(e.to_string()))?;
        client
            .update_table()
            .table_name(table)
            .set_attribute_definitions(Some(attribute_definitions(def)?))
            .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create).build())
            .send()
            .await
            .map_err(|e| TableError::Create {
                table: table.to_owned(),
                message: format!(
                    "adding index {}: {}",
                    index.index_name,
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                ),
            })?;
        tracing::warn!(
            table,
            index = %index.index_name,
            "index added; DynamoDB builds it from the table's items, and queries of it fail until it is ACTIVE"
        );
    }
    Ok(())
}

/// Waits until index `name`, if it is being deleted, is gone.
async fn wait_index_gone(client: &Client, table: &str, name: &str) -> Result<(), TableError> {
    let seconds = 1800;
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while index_status(client, table, name).await == Some(IndexStatus::Deleting) {
        if std::time::Instant::now() > deadline {
            return Err(TableError::NotActive {
                table: format!("{table} (index {name} still being deleted)"),
                seconds,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

async fn index_status(client: &Client, table: &str, name: &str) -> Option<IndexStatus> {
    let described = client.describe_table().table_name(table).send().await.ok()?;
    (described.table()?.global_secondary_indexes().iter())
        .find(|i| i.index_name() == Some(name))
        .and_then(|i| i.index_status().cloned())
}

/// An index of an existing table that projects less than `state/table.json` asks for
/// (or is missing): the table was made by an older version. DynamoDB cannot add a
/// projected attribute to an existing index, so it stays so until it is recreated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexGap {
    pub index: String,
    /// The attributes the definition projects and the index does not (all of them
    /// when the index is missing).
    pub missing: Vec<String>,
    pub index_missing: bool,
}

impl std::fmt::Display for IndexGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.index_missing {
            write!(f, "index {} is missing", self.index)
        } else {
            write!(
                f,
                "index {} does not project {}",
                self.index,
                self.missing.join(", ")
            )
        }
    }
}

/// The indexes of `table` that lack what the definition gives them.
pub async fn index_gaps(client: &Client, table: &str) -> Result<Vec<IndexGap>, TableError> {
    let def: Definition =
        serde_json::from_str(TABLE_DEFINITION).map_err(|e| TableError::Definition(e.to_string()))?;
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| TableError::Describe {
            table: table.to_owned(),
            message: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
        })?;
    let indexes = described
        .table()
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default();
    Ok(gaps(&def, indexes))
}

fn gaps(def: &Definition, described: &[GlobalSecondaryIndexDescription]) -> Vec<IndexGap> {
    def.global_secondary_indexes
        .iter()
        .filter_map(|wanted| {
            let found = described
                .iter()
                .find(|d| d.index_name() == Some(wanted.index_name.as_str()));
            // An index being deleted (to be recreated) is as good as missing.
            let found = found.filter(|d| d.index_status() != Some(&IndexStatus::Deleting));
            let Some(found) = found else {
                return Some(IndexGap {
                    index: wanted.index_name.clone(),
                    missing: wanted.projection.non_key_attributes.clone(),
                    index_missing: true,
                });
            };
            let projection = found.projection();
            // An index projecting everything lacks nothing.
            if projection.and_then(|p| p.projection_type()) == Some(&ProjectionType::All) {
                return None;
            }
            let has = projection.map(|p| p.non_key_attributes()).unwrap_or_default();
            let missing: Vec<String> = (wanted.projection.non_key_attributes.iter())
                .filter(|a| !has.contains(a))
                .cloned()
                .collect();
            (!missing.is_empty()).then(|| IndexGap {
                index: wanted.index_name.clone(),
                missing,
                index_missing: false,
            })
        })
        .collect()
}

async fn wait_active(client: &Client, table: &str) -> Result<(), TableError> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let status = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|o| o.table().and_then(|t| t.table_status().cloned()));
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(TableError::NotActive {
                table: table.to_owned(),
                seconds: 120,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> Definition {
        serde_json::from_str(TABLE_DEFINITION).unwrap()
    }

    fn described(name: &str, attributes: &[&str]) -> GlobalSecondaryIndexDescription {
        GlobalSecondaryIndexDescription::builder()
            .index_name(name)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(attributes.iter().map(|a| a.to_string()).collect()))
                    .build(),
            )
            .build()
    }

    /// The indexes as the definition makes them, with `drop` left out of `index`.
    fn as_defined_without(index: &str, drop: &str) -> Vec<GlobalSecondaryIndexDescription> {
        (definition().global_secondary_indexes.iter())
            .map(|i| {
                let attributes: Vec<&str> = (i.projection.non_key_attributes.iter())
                    .map(String::as_str)
                    .filter(|a| i.index_name != index || *a != drop)
                    .collect();
                described(&i.index_name, &attributes)
            })
            .collect()
    }

    #[test]
    fn an_index_as_defined_has_no_gap() {
        assert_eq!(gaps(&definition(), &as_defined_without("", "")), vec![]);
    }

    #[test]
    fn an_index_made_before_an_attribute_was_projected_names_it() {
        let found = gaps(&definition(), &as_defined_without("by-region", "platform"));
        assert_eq!(
            found,
            vec![IndexGap {
                index: "by-region".into(),
                missing: vec!["platform".into()],
                index_missing: false,
            }]
        );
        assert_eq!(found[0].to_string(), "index by-region does not project platform");
    }

    #[test]
    fn an_index_being_deleted_counts_as_missing() {
        let mut indexes = as_defined_without("", "");
        for index in &mut indexes {
            if index.index_name() == Some("by-region") {
                index.index_status = Some(IndexStatus::Deleting);
            }
        }
        let found = gaps(&definition(), &indexes);
        assert_eq!(found.len(), 1);
        assert!(found[0].index_missing);
    }

    #[test]
    fn a_missing_index_is_named() {
        let mut indexes = as_defined_without("", "");
        indexes.retain(|i| i.index_name() != Some("by-region"));
        let found = gaps(&definition(), &indexes);
        assert_eq!(found.len(), 1);
        assert!(found[0].index_missing);
        assert_eq!(found[0].to_string(), "index by-region is missing");
    }
}
