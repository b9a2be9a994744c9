//! `fhirgate access`: the access log of a data directory, as JSON records or
//! a FHIR Bundle of AuditEvent.

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    state: super::StateArgs,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    client: Option<String>,
    #[arg(long)]
    patient: Option<String>,
    /// Only records at or after this time: RFC 3339 (2026-12-04T17:00:00Z),
    /// a date (2026-12-04), or milliseconds since the epoch.
    #[arg(long, value_parser = fhirgate_core::clock::parse_instant_ms)]
    since: Option<i64>,
    /// Only records before this time (as `--since`).
    #[arg(long, value_parser = fhirgate_core::clock::parse_instant_ms)]
    until: Option<i64>,
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print a FHIR R4 Bundle of AuditEvent instead of JSON records.
    #[arg(long)]
    fhir: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { state, tenant, client, patient, since, until, limit, fhir } = args;
    let (store, _) = state.open().await?;
    let log = fhirgate_gateway::access::AccessLog::start(
        std::sync::Arc::new(store),
        fhirgate_gateway::access::Commit::Buffered,
    );
    let q = fhirgate_gateway::access::AccessQuery {
        tenant: tenant.map(|t| t.to_ascii_lowercase()),
        client,
        patient,
        request_id: None,
        since_ms: since,
        until_ms: until,
        limit: Some(limit),
        ..Default::default()
    };
    let records = log.query(&q).await?;
    let out = if fhir {
        fhirgate_gateway::access::audit_event_bundle(&records, "fhirgate")
    } else {
        serde_json::json!({ "records": records })
    };
    fhirgate_core::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
