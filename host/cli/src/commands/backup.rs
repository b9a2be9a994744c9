//! `fhirgate backup` and `fhirgate restore`: a data directory copied while
//! the gateway serves, and put back into a new directory.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The gateway's data directory.
    #[arg(long, env = "FHIRGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The key-encryption key's file, when the gateway's `kek_file` is set
    /// (default: `kek.key` in the data directory; `FHIRGATE_KEK` wins). It
    /// is not copied: keep it apart from the backups.
    #[arg(long, env = "FHIRGATE_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// A new (or empty) directory to write the backup to.
    dest: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The new data directory to restore into; one holding a gateway's data
    /// is refused.
    #[arg(long, env = "FHIRGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// The key-encryption key the backed-up gateway ran with (or
    /// `FHIRGATE_KEK`): the restore checks that it opens the backup.
    #[arg(long, env = "FHIRGATE_KEK_FILE")]
    kek_file: Option<PathBuf>,
    /// Also write the KEK from --kek-file to `kek.key` in the data directory,
    /// where a gateway without `kek_file` looks for it.
    #[arg(long, requires = "kek_file")]
    install_kek: bool,
    /// The backup directory `fhirgate backup` wrote.
    src: PathBuf,
}

pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let manifest = fhirgate_gateway::backup::backup(&args.data_dir, args.kek_file.as_deref(), &args.dest).await?;
    fhirgate_core::say!(
        "{}",
        serde_json::json!({ "backup": args.dest, "created_at": manifest.created_at, "kek": manifest.kek,
                            "files": manifest.files.len(),
                            "note": "The key material in it is sealed: keep the key-encryption key apart from it." })
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let manifest =
        fhirgate_gateway::backup::restore(&args.src, &args.data_dir, args.kek_file.as_deref(), args.install_kek)
            .await?;
    fhirgate_core::say!(
        "{}",
        serde_json::json!({ "restored": args.data_dir, "created_at": manifest.created_at, "kek": manifest.kek })
    );
    Ok(())
}
