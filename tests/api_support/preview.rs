//! A test double of the stack preview, for the API and CLI tests of `plan --diff` and
//! the replacement guard at start; the real preview runs against moto in the steps
//! tests.

/// A TEST DOUBLE of the stack preview: every tenant's stack would have its database
/// cluster replaced, and its chart would not change (the real preview is tested
/// against moto and the Helm stand-in in the steps tests).
pub struct ReplacingClusterPreviewDouble;

#[async_trait::async_trait]
impl tenant_orchestrator::ports::ChangePreview for ReplacingClusterPreviewDouble {
    async fn preview_stack(
        &self,
        _tenant: &tenant_orchestrator::record::TenantRecord,
        _desired: &tenant_orchestrator::domain::TenantSpec,
        _release: &tenant_orchestrator::domain::ReleaseVersion,
    ) -> Result<tenant_orchestrator::ports::StackPreview, String> {
        use tenant_orchestrator::domain::change_set::{ChangeAction, Replacement, ResourceChange};
        Ok(tenant_orchestrator::ports::StackPreview::Changes(vec![
            ResourceChange {
                action: ChangeAction::Modify,
                logical_id: "DatabaseCluster".into(),
                resource_type: "AWS::RDS::DBCluster".into(),
                replacement: Replacement::Always,
                properties: vec!["DatabaseName".into()],
            },
        ]))
    }

    async fn preview_chart(
        &self,
        _tenant: &tenant_orchestrator::record::TenantRecord,
        _desired: &tenant_orchestrator::domain::TenantSpec,
        _release: &tenant_orchestrator::domain::ReleaseVersion,
    ) -> Result<String, String> {
        Ok(String::new())
    }
}
