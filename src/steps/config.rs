//! WriteConfig and DeleteConfig: the tenant's runtime configuration and secrets in the
//! SSM parameter store under `/<environment>/tenants/<id>/`, where the application
//! reads them with its workload role. Configuration lives there and not in the image,
//! so one artifact serves every tenant.
//!
//! Below the prefix, `config/` holds values derived from the spec and the stack
//! outputs, `secrets/` holds SecureStrings generated once, and `infra/` belongs to the
//! CloudFormation stack (written and deleted by it, never touched here).

mod parameters;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ssm::types::{ParameterType, Tag};
use base64::Engine as _;
use tracing::{info, instrument};

use crate::domain::TenantSpec;
use crate::step::{Step, StepContext, StepOutcome};

use super::{aws_failure, names, AwsClients};

pub use parameters::{configuration, owned_by_config, plan, Kind, Stored, Write, SECRETS};

/// Most names `DeleteParameters` accepts in one call.
const DELETE_BATCH: usize = 10;

/// Random bytes in a generated secret (256 bits).
const SECRET_BYTES: usize = 32;

/// Every parameter under `prefix`, by full name. Values are read without decryption:
/// a secret is only ever compared by type, so its value never needs to leave the store.
pub(crate) async fn parameters_under(
    ssm: &aws_sdk_ssm::Client,
    prefix: &str,
) -> Result<BTreeMap<String, Stored>, StepOutcome> {
    let mut found = BTreeMap::new();
    let mut token = None;
    loop {
        let page = ssm
            .get_parameters_by_path()
            .path(prefix)
            .recursive(true)
            .with_decryption(false)
            .set_next_token(token)
            .send()
            .await
            .map_err(|err| aws_failure(&format!("reading parameters under {prefix}"), err))?;
        for p in page.parameters.unwrap_or_default() {
            let kind = match p.r#type {
                Some(ParameterType::SecureString) => Kind::Secret,
                Some(ParameterType::StringList) => Kind::StringList,
                _ => Kind::String,
            };
            if let Some(name) = p.name {
                found.insert(
                    name,
                    Stored {
                        value: p.value.unwrap_or_default(),
                        kind,
                    },
                );
            }
        }
        token = page.next_token;
        if token.is_none() {
            return Ok(found);
        }
    }
}

/// A new secret from the operating system's CSPRNG, base64-encoded.
fn generate_secret() -> Result<String, rand::rand_core::OsError> {
    use rand::TryRngCore as _;
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn tags(spec: &TenantSpec) -> Vec<Tag> {
    [
        ("tenant", spec.id.as_str()),
        ("environment", spec.environment.as_str()),
        ("managed-by", "tenant-orchestrator"),
    ]
    .into_iter()
    .map(|(k, v)| {
        Tag::builder()
            .key(k)
            .value(v)
            .build()
            .expect("key and value are set")
    })
    .collect()
}

/// The `WriteConfig` step.
pub struct WriteConfig {
    aws: Arc<AwsClients>,
}

impl WriteConfig {
    pub fn new(aws: Arc<AwsClients>) -> Self {
        Self { aws }
    }

    async fn apply(
        &self,
        ssm: &aws_sdk_ssm::Client,
        spec: &TenantSpec,
        prefix: &str,
        write: &Write,
    ) -> Result<(), StepOutcome> {
        let name = format!("{prefix}/{}", write.name());
        let request = ssm.put_parameter().name(&name);
        // Tags can only be given when a parameter is created; an overwrite keeps them.
        let request = match write {
            Write::Create { value, kind, .. } => request
                .value(value)
                .r#type(kind.parameter_type())
                .overwrite(false)
                .set_tags(Some(tags(spec))),
            Write::Overwrite { value, kind, .. } => {
                request.value(value).r#type(kind.parameter_type()).overwrite(true)
            }
            Write::CreateSecret { .. } => request
                .value(generate_secret().map_err(|e| {
                    StepOutcome::retry(format!("generating {name}: the system random source failed: {e}"))
                })?)
                .r#type(ParameterType::SecureString)
                .overwrite(false)
                .set_tags(Some(tags(spec))),
        };
        let err = match request.send().await {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if !err
            .as_service_error()
            .is_some_and(|e| e.is_parameter_already_exists())
        {
            return Err(aws_failure(&format!("writing parameter {name}"), err));
        }
        match write {
            // Another run created the secret first: keep its value rather than rotate.
            Write::CreateSecret { .. } => Ok(()),
            // The parameter appeared between the read and the write: most often our own
            // create, applied by SSM but with the answer lost, so the SDK's retry found
            // it. What it holds is what we wrote, or else the configuration wins.
            Write::Create { value, kind, .. } => {
                if self.holds(ssm, &name, value, *kind).await? {
                    return Ok(());
                }
                ssm.put_parameter()
                    .name(&name)
                    .value(value)
                    .r#type(kind.parameter_type())
                    .overwrite(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|err| aws_failure(&format!("writing parameter {name}"), err))
            }
            Write::Overwrite { .. } => Err(aws_failure(&format!("writing parameter {name}"), err)),
        }
    }

    /// Whether the parameter `name` holds `value` as `kind`.
    async fn holds(
        &self,
        ssm: &aws_sdk_ssm::Client,
        name: &str,
        value: &str,
        kind: Kind,
    ) -> Result<bool, StepOutcome> {
        let found = ssm
            .get_parameter()
            .name(name)
            .with_decryption(false)
            .send()
            .await
            .map_err(|err| aws_failure(&format!("reading parameter {name}"), err))?;
        Ok(found
            .parameter
            .is_some_and(|p| p.value.as_deref() == Some(value) && p.r#type == Some(kind.parameter_type())))
    }
}

#[async_trait]
impl Step for WriteConfig {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let tenant = ctx.tenant;
        let spec = &tenant.spec;
        let wanted = match configuration(spec, &tenant.facts.stack_outputs) {
            Ok(wanted) => wanted,
            Err(missing) => {
                return StepOutcome::fail(format!(
                    "the configuration needs stack outputs {} of stack {}, and they are not recorded; \
                     check that the stack was created or updated completely, then retry",
                    missing.join(", "),
                    names::stack(spec)
                ))
            }
        };
        let prefix = names::ssm_prefix(spec);
        let ssm = &self.aws.tenant(spec).ssm;
        let existing: BTreeMap<String, Stored> = match parameters_under(ssm, &prefix).await {
            Ok(found) => found
                .into_iter()
                .filter_map(|(name, stored)| {
                    Some((name.strip_prefix(&format!("{prefix}/"))?.to_owned(), stored))
                })
                .collect(),
            Err(outcome) => return outcome,
        };
        let writes = plan(&wanted, &existing);
        for write in &writes {
            if let Err(outcome) = self.apply(ssm, spec, &prefix, write).await {
                return outcome;
            }
        }
        let changed: Vec<&str> = writes.iter().map(Write::name).collect();
        info!(%prefix, written = changed.len(), "configuration written");
        let total = wanted.len() + SECRETS.len();
        let summary = if changed.is_empty() {
            format!("configuration under {prefix} is up to date ({total} parameters)")
        } else {
            format!(
                "wrote {} of {total} parameters under {prefix}: {}",
                changed.len(),
                changed.join(", ")
            )
        };
        let mut facts = tenant.facts.clone();
        facts.progress = None;
        StepOutcome::done(summary, facts)
    }
}

/// The `DeleteConfig` step.
pub struct DeleteConfig {
    aws: Arc<AwsClients>,
}

impl DeleteConfig {
    pub fn new(aws: Arc<AwsClients>) -> Self {
        Self { aws }
    }
}

#[async_trait]
impl Step for DeleteConfig {
    #[instrument(skip_all, fields(tenant = %ctx.tenant.id(), step = %ctx.step))]
    async fn run(&self, ctx: StepContext<'_>) -> StepOutcome {
        let spec = &ctx.tenant.spec;
        let prefix = names::ssm_prefix(spec);
        let ssm = &self.aws.tenant(spec).ssm;
        let doomed: Vec<String> = match parameters_under(ssm, &prefix).await {
            Ok(found) => found
                .into_keys()
                .filter(|name| owned_by_config(&prefix, name))
                .collect(),
            Err(outcome) => return outcome,
        };
        for batch in doomed.chunks(DELETE_BATCH) {
            // Names already gone come back as `InvalidParameters`: that is the goal.
            if let Err(err) = ssm
                .delete_parameters()
                .set_names(Some(batch.to_vec()))
                .send()
                .await
            {
                return aws_failure(&format!("deleting parameters under {prefix}"), err);
            }
        }
        info!(%prefix, deleted = doomed.len(), "configuration deleted");
        let mut facts = ctx.tenant.facts.clone();
        facts.progress = None;
        let summary = if doomed.is_empty() {
            format!("no configuration left under {prefix}")
        } else {
            format!(
                "deleted {} parameters under {prefix} (infra/ is left to the stack)",
                doomed.len()
            )
        };
        StepOutcome::done(summary, facts)
    }
}
