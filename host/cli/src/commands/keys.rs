//! `fhirgate keys`: the token signing keys in a data directory.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "FHIRGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The key-encryption key's file, when the gateway's `kek_file` is set
    /// (default: `kek.key` in the data directory; `FHIRGATE_KEK` wins).
    #[arg(long, env = "FHIRGATE_KEK_FILE")]
    kek_file: Option<PathBuf>,
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
    let Args { data_dir, kek_file, command } = args;
    let store = fhirgate_store::Store::open_dir(&data_dir).await?;
    let kek = fhirgate_store::material::KeyMaterial::open(&store, &data_dir, kek_file.as_deref()).await?.kek;
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
