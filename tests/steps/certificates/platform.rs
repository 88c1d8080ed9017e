//! The shared platform a region offers, built on the local AWS for one test: a VPC
//! with two subnets (CloudFormation, since moto's load balancers need real subnets),
//! an ALB with HTTPS listeners that each carry a default certificate, and a Route 53
//! hosted zone. Also reads back what AWS says is attached, for the assertions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, FixedResponseActionConfig, LoadBalancerTypeEnum, ProtocolEnum,
};
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
use tenant_orchestrator::domain::Region;
use tenant_orchestrator::steps::{AwsClients, RegionClients, RegionSettings};

pub struct Platform {
    pub aws: Arc<AwsClients>,
    pub region: Region,
    /// Unique per test: part of every name the test creates.
    pub uid: String,
    pub listeners: Vec<String>,
    pub hosted_zone_id: String,
    /// The listeners' default certificate (not the steps' business).
    pub default_certificate: String,
    /// The ALB's DNS name, where hostnames' alias records point.
    pub load_balancer_dns: String,
}

/// A certificate AWS reports as attached to one of the platform's listeners.
#[derive(Debug, Clone)]
pub struct Attached {
    pub arn: String,
    pub listener: String,
    pub issued: bool,
    /// False when ACM no longer knows the certificate.
    pub exists: bool,
    pub names: BTreeSet<String>,
}

const NETWORK_TEMPLATE: &str = r#"{
  "Resources": {
    "Vpc": { "Type": "AWS::EC2::VPC", "Properties": { "CidrBlock": "10.20.0.0/16" } },
    "SubnetA": { "Type": "AWS::EC2::Subnet",
      "Properties": { "VpcId": { "Ref": "Vpc" }, "CidrBlock": "10.20.1.0/24", "AvailabilityZone": "us-east-1a" } },
    "SubnetB": { "Type": "AWS::EC2::Subnet",
      "Properties": { "VpcId": { "Ref": "Vpc" }, "CidrBlock": "10.20.2.0/24", "AvailabilityZone": "us-east-1b" } }
  },
  "Outputs": { "SubnetA": { "Value": { "Ref": "SubnetA" } }, "SubnetB": { "Value": { "Ref": "SubnetB" } } }
}"#;

impl Platform {
    /// Builds the platform with `listener_count` HTTPS listeners.
    pub async fn build(listener_count: usize) -> Arc<Self> {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "these tests need the local AWS: run `eval \"$(localstack/start.sh)\"` first"
        );
        let aws = Arc::new(AwsClients::from_env().await);
        let region =
            Region::parse(&std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())).unwrap();
        let uid = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let clients = aws.region(&region);

        let stack = format!("certs-net-{uid}");
        clients
            .cloudformation
            .create_stack()
            .stack_name(&stack)
            .template_body(NETWORK_TEMPLATE)
            .send()
            .await
            .expect("network stack created");
        let described = clients
            .cloudformation
            .describe_stacks()
            .stack_name(&stack)
            .send()
            .await
            .unwrap();
        let subnets: Vec<String> = described.stacks()[0]
            .outputs()
            .iter()
            .filter_map(|o| o.output_value().map(str::to_owned))
            .collect();
        assert_eq!(subnets.len(), 2, "two subnets from the network stack");

        let lb = clients
            .elbv2
            .create_load_balancer()
            .name(format!("alb-{uid}"))
            .r#type(LoadBalancerTypeEnum::Application)
            .set_subnets(Some(subnets))
            .send()
            .await
            .expect("load balancer created");
        let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
        let load_balancer_dns = lb.load_balancers()[0].dns_name().unwrap().to_owned();

        let default_certificate = clients
            .acm
            .request_certificate()
            .domain_name(format!("default.{uid}.example.test"))
            .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
            .send()
            .await
            .unwrap()
            .certificate_arn()
            .unwrap()
            .to_owned();
        let mut listeners = Vec::new();
        for i in 0..listener_count {
            let action = Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .content_type("text/plain")
                        .build(),
                )
                .build();
            let listener = clients
                .elbv2
                .create_listener()
                .load_balancer_arn(&lb_arn)
                .protocol(ProtocolEnum::Https)
                .port(443 + 1000 * i as i32)
                .certificates(
                    Certificate::builder()
                        .certificate_arn(&default_certificate)
                        .build(),
                )
                .default_actions(action)
                .send()
                .await
                .expect("listener created");
            listeners.push(listener.listeners()[0].listener_arn().unwrap().to_owned());
        }

        let zone = clients
            .route53
            .create_hosted_zone()
            .name(format!("{uid}.example.test"))
            .caller_reference(&uid)
            .send()
            .await
            .expect("hosted zone created");
        let hosted_zone_id = zone
            .hosted_zone()
            .unwrap()
            .id()
            .trim_start_matches("/hostedzone/")
            .to_owned();

        Arc::new(Self {
            aws,
            region,
            uid,
            listeners,
            hosted_zone_id,
            default_certificate,
            load_balancer_dns,
        })
    }

    pub fn clients(&self) -> Arc<RegionClients> {
        self.aws.region(&self.region)
    }

    pub fn settings(&self) -> RegionSettings {
        RegionSettings {
            listener_arns: self.listeners.clone(),
            hosted_zone_id: self.hosted_zone_id.clone(),
            ..RegionSettings::default()
        }
    }

    /// A hostname in the platform's zone.
    pub fn hostname(&self, label: &str) -> String {
        format!("{label}.{}.example.test", self.uid)
    }

    /// Every certificate on the platform's listeners except their default one, as
    /// DescribeListenerCertificates and DescribeCertificate report them.
    pub async fn attached_certificates(&self) -> Vec<Attached> {
        let clients = self.clients();
        let mut out = Vec::new();
        for listener in &self.listeners {
            let certs = clients
                .elbv2
                .describe_listener_certificates()
                .listener_arn(listener)
                .send()
                .await
                .expect("listener certificates");
            for cert in certs.certificates() {
                let arn = cert.certificate_arn().unwrap().to_owned();
                if arn == self.default_certificate {
                    continue;
                }
                let described = clients
                    .acm
                    .describe_certificate()
                    .certificate_arn(&arn)
                    .send()
                    .await;
                let (exists, issued, names) = match described {
                    Ok(d) => {
                        let detail = d.certificate().unwrap();
                        (
                            true,
                            detail.status() == Some(&aws_sdk_acm::types::CertificateStatus::Issued),
                            detail.subject_alternative_names().iter().cloned().collect(),
                        )
                    }
                    Err(_) => (false, false, BTreeSet::new()),
                };
                out.push(Attached {
                    arn,
                    listener: listener.clone(),
                    issued,
                    exists,
                    names,
                });
            }
        }
        out
    }

    /// Hostnames of `names` that are not on an issued certificate attached to a
    /// listener, and listeners carrying more than `limit` certificates. Listing the
    /// listeners and describing their certificates is not one atomic read, so a
    /// replacement happening in between can look like a gap: a problem counts only
    /// if it is still there when looked at again.
    pub async fn uncovered(&self, names: &BTreeSet<String>, limit: usize) -> Vec<String> {
        let mut problems = Vec::new();
        for _ in 0..3 {
            problems = self.uncovered_now(names, limit).await;
            if problems.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        problems
    }

    async fn uncovered_now(&self, names: &BTreeSet<String>, limit: usize) -> Vec<String> {
        let attached = self.attached_certificates().await;
        let mut problems: Vec<String> = names
            .iter()
            .filter(|n| {
                !attached
                    .iter()
                    .any(|c| c.exists && c.issued && c.names.contains(*n))
            })
            .map(|n| format!("{n} is not on an issued, attached certificate"))
            .collect();
        let mut per_listener: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &attached {
            *per_listener.entry(c.listener.as_str()).or_default() += 1;
            if !c.exists {
                problems.push(format!("{} is attached but ACM does not know it", c.arn));
            }
        }
        for (listener, count) in per_listener {
            if count > limit {
                problems.push(format!("{listener} carries {count} certificates, limit {limit}"));
            }
        }
        problems
    }

    /// Whether ACM still knows the certificate.
    pub async fn certificate_exists(&self, arn: &str) -> bool {
        self.clients()
            .acm
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .is_ok()
    }

    /// Names of the CNAME records in the platform's zone.
    pub async fn cname_records(&self) -> BTreeSet<String> {
        let out = self
            .clients()
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .send()
            .await
            .expect("record sets");
        out.resource_record_sets()
            .iter()
            .filter(|r| r.r#type().as_str() == "CNAME")
            .map(|r| r.name().to_owned())
            .collect()
    }

    /// The record set of `kind` at `name` in the platform's zone, if there is one.
    async fn record_set(&self, name: &str, kind: RrType) -> Option<ResourceRecordSet> {
        let out = self
            .clients()
            .route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .start_record_name(name)
            .start_record_type(kind.clone())
            .max_items(1)
            .send()
            .await
            .expect("record sets");
        out.resource_record_sets()
            .iter()
            .find(|r| r.name().trim_end_matches('.') == name && *r.r#type() == kind)
            .cloned()
    }

    /// Where the hostname's A record points: the alias target's DNS name, or the
    /// record's values.
    pub async fn address_record(&self, hostname: &str) -> Option<String> {
        self.record_set(hostname, RrType::A)
            .await
            .map(|set| match set.alias_target() {
                Some(alias) => alias.dns_name().trim_end_matches('.').to_owned(),
                None => set
                    .resource_records()
                    .iter()
                    .map(|r| r.value())
                    .collect::<Vec<_>>()
                    .join(","),
            })
    }

    /// The text of the hostname's ownership record, if there is one.
    pub async fn ownership_record(&self, hostname: &str) -> Option<String> {
        self.record_set(&format!("_tenantctl.{hostname}"), RrType::Txt)
            .await
            .map(|set| {
                set.resource_records()
                    .iter()
                    .map(|r| r.value())
                    .collect::<Vec<_>>()
                    .join(",")
            })
    }

    /// Writes (UPSERT) or deletes a plain A record, as someone other than the steps would.
    pub async fn change_plain_a_record(&self, hostname: &str, address: &str, action: ChangeAction) {
        let set = ResourceRecordSet::builder()
            .name(hostname)
            .r#type(RrType::A)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value(address).build().unwrap())
            .build()
            .unwrap();
        self.change(vec![(action, set)]).await;
    }

    /// Deletes the hostname's records as they are, as an operator cleaning up by hand would.
    pub async fn delete_records(&self, hostname: &str) {
        let mut changes = Vec::new();
        if let Some(set) = self.record_set(hostname, RrType::A).await {
            changes.push((ChangeAction::Delete, set));
        }
        if let Some(set) = self
            .record_set(&format!("_tenantctl.{hostname}"), RrType::Txt)
            .await
        {
            changes.push((ChangeAction::Delete, set));
        }
        self.change(changes).await;
    }

    async fn change(&self, changes: Vec<(ChangeAction, ResourceRecordSet)>) {
        let changes = changes
            .into_iter()
            .map(|(action, set)| {
                Change::builder()
                    .action(action)
                    .resource_record_set(set)
                    .build()
                    .unwrap()
            })
            .collect();
        self.clients()
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap())
            .send()
            .await
            .expect("records changed");
    }
}
