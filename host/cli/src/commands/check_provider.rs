//! `fhirgate check-provider`: the app's call set against a provider through
//! the partner's shaping module, reported per resource and face.

use std::path::PathBuf;

use fhirgate_gateway::policy::PolicyFile;
use fhirgate_sandbox::Runtime;

#[derive(clap::Args)]
pub struct Args {
    /// The provider's FHIR base URL.
    base_url: String,
    /// The FHIR version the provider speaks: r4, stu3 or dstu2.
    #[arg(long, value_parser = fhirgate_devtools::demo::provider::parse_fhir_version)]
    fhir_version: fhirgate_core::fhir::Version,
    /// A bearer token the provider accepts, if it needs one.
    #[arg(long, env = "FHIRGATE_PROVIDER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The patient whose data the calls read (default: the first found).
    #[arg(long)]
    patient: Option<String>,
    /// The policy whose shaping module is used.
    #[arg(long, default_value = "policies/demo/policy.toml")]
    policy: PathBuf,
    /// Budget of each call to the provider, in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    timeout_ms: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { base_url, fhir_version, token, patient, policy, timeout_ms, json } = args;
    let runtime = Runtime::new(Default::default())?;
    let loaded = PolicyFile::read(&policy)?.load(&policy, &runtime)?;
    let options = fhirgate_devtools::conformance::CheckOptions {
        base_url,
        fhir_version,
        token,
        patient,
        timeout: std::time::Duration::from_millis(timeout_ms),
    };
    let report = fhirgate_devtools::conformance::check(&loaded.shaper, &options).await?;
    if json {
        fhirgate_core::say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        fhirgate_core::say!("{}", report.render().trim_end_matches('\n'));
    }
    if !report.app_loads() {
        // 2, not 1: the check ran and the provider failed it.
        eprintln!("Patient does not work with this provider: the app would not load");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        std::process::exit(2);
    }
    Ok(())
}
