//! The table definition kept in `state/table.json`, and creating the table from it.

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
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

/// Creates the table if it does not exist and waits until it is ACTIVE. Safe to run
/// any number of times.
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
        return Ok(TableOutcome::AlreadyExisted);
    }
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&def.key_schema)?));
    for a in &def.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(|e| TableError::Definition(e.to_string()))?,
        );
    }
    for index in &def.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
            .set_non_key_attributes(if index.projection.non_key_attributes.is_empty() {
                None
            } else {
                Some(index.projection.non_key_attributes.clone())
            })
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(keys(&index.key_schema)?))
                .projection(projection)
                .build()
                .map_err(|e| TableError::Definition(e.to_string()))?,
        );
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
