//! `TestFleet`: a fresh table with tenants created as an operator creates them, and
//! provisioned to Active by the `ScriptedStep` test double where a test asks for it.
//!
//! ```ignore
//! let Fleet { store, commands, .. } = TestFleet::new()
//!     .with_active("acme", "1.0.0")
//!     .in_region("eu-west-1")
//!     .with_provisioning("globex", "1.0.0")
//!     .build()
//!     .await;
//! ```

use tenant_orchestrator::app::TenantCommands;
use tenant_orchestrator::record::Actor;
use tenant_orchestrator::step::StepRegistry;
use tenant_orchestrator::store::TenantStore;
use tenant_orchestrator::worker::Worker;

use super::{drain, fast_worker, fresh_store, release, spec, tenant_id, ScriptedStep, TestStore};

/// The operator the fixtures create tenants as.
pub fn operator() -> Actor {
    Actor::operator("test")
}

struct Planned {
    id: String,
    region: String,
    release: String,
    active: bool,
}

/// What a test's table holds before the test acts; `build` writes it.
pub struct TestFleet {
    region: String,
    tenants: Vec<Planned>,
}

/// A built `TestFleet`: the table and the operator commands on it.
pub struct Fleet {
    pub store: TestStore,
    pub commands: TenantCommands,
}

impl TestFleet {
    /// An empty fleet; tenants go to us-east-1 until `in_region` says otherwise.
    pub fn new() -> Self {
        Self {
            region: "us-east-1".into(),
            tenants: vec![],
        }
    }

    /// Tenants added after this call are in `region`.
    pub fn in_region(mut self, region: &str) -> Self {
        self.region = region.into();
        self
    }

    /// A tenant just created at `release` (`spec(id, region)`), waiting for a worker to
    /// provision it.
    pub fn with_provisioning(self, id: &str, release: &str) -> Self {
        self.with(id, release, false)
    }

    /// A tenant created at `release` and provisioned to Active by scripted steps.
    pub fn with_active(self, id: &str, release: &str) -> Self {
        self.with(id, release, true)
    }

    fn with(mut self, id: &str, release: &str, active: bool) -> Self {
        self.tenants.push(Planned {
            id: id.into(),
            region: self.region.clone(),
            release: release.into(),
            active,
        });
        self
    }

    /// Creates the tenants on a fresh table and provisions the active ones with a
    /// worker of its own (owner `fleet-setup`), whose steps all succeed.
    pub async fn build(self) -> Fleet {
        let store = fresh_store().await;
        let commands = TenantCommands::new(store.clone());
        for t in self.tenants.iter().filter(|t| t.active) {
            create(&commands, t).await;
        }
        if self.tenants.iter().any(|t| t.active) {
            let setup = Worker::new(
                store.clone(),
                StepRegistry::all(ScriptedStep::new()),
                fast_worker("fleet-setup"),
            );
            drain(&setup).await;
        }
        for t in self.tenants.iter().filter(|t| !t.active) {
            create(&commands, t).await;
        }
        for t in self.tenants.iter().filter(|t| t.active) {
            let record = store.load(&tenant_id(&t.id)).await.unwrap();
            assert_eq!(
                record.state.label(),
                "Active",
                "set-up: {} was not provisioned (last error: {:?})",
                t.id,
                record.last_error
            );
        }
        Fleet { store, commands }
    }
}

async fn create(commands: &TenantCommands, t: &Planned) {
    commands
        .create(spec(&t.id, &t.region), release(&t.release), &operator())
        .await
        .unwrap_or_else(|e| panic!("set-up: creating {} failed: {e}", t.id));
}
