//! `fhirgate keys`: the token signing keys in a data directory.

use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    state: super::StateArgs,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Retire the signing key and create a new one. Running gateways pick it up
    /// within 30 s; the retired key stays published until its tokens expire.
    Rotate {
        /// Algorithm of the new key: ES256 or RS256.
        #[arg(long, default_value = "ES256")]
        algorithm: String,
        /// Seconds a retired key stays published (token lifetime + leeway).
        #[arg(long, default_value_t = 3720)]
        publish_seconds: u64,
    },
    /// Print the published JWK Set.
    List,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { state, command } = args;
    let (store, material) = state.open().await?;
    let kek = material.kek;
    let ring = match command {
        KeysCommand::Rotate { algorithm, publish_seconds } => {
            let alg = match algorithm.as_str() {
                "ES256" => jsonwebtoken::Algorithm::ES256,
                "RS256" => jsonwebtoken::Algorithm::RS256,
                other => anyhow::bail!("--algorithm {other}: expected ES256 or RS256"),
            };
            fhirgate_gateway::oauth::key_store::rotate(&store, &kek, alg, publish_seconds).await?
        }
        KeysCommand::List => {
            fhirgate_gateway::oauth::key_store::load_ring(&store, &kek, jsonwebtoken::Algorithm::ES256, 3720).await?
        }
    };
    fhirgate_core::say!("{}", serde_json::to_string_pretty(&ring.jwks())?);
    Ok(())
}
