//! The trust verbs: `secret`, `secrets rewrap`, `signer`, `audit`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SecretsAdminCommand {
    /// Rewrap every tenant's data key from the old master key to the new one, on the
    /// database directly, opening no secret; safe to run again after an interruption
    Rewrap(crate::args::RewrapArgs),
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret: its fields from a JSON object in a file (--from-file), on stdin
    /// (--from-file -), or asked for one by one on a terminal (--field NAME …)
    Create {
        /// The secret's name: a-z, 0-9, '-' and '_'
        name: String,
        /// A file holding a JSON object of field → value, or - for stdin
        #[arg(long, value_name = "FILE|-", conflicts_with = "field")]
        from_file: Option<std::path::PathBuf>,
        /// A field whose value is asked for on the terminal, not echoed (repeatable)
        #[arg(long, value_name = "NAME")]
        field: Vec<String>,
    },
    /// Replace a secret's fields (the same ways as create)
    Rotate {
        /// The secret's name
        name: String,
        /// A file holding a JSON object of field → value, or - for stdin
        #[arg(long, value_name = "FILE|-", conflicts_with = "field")]
        from_file: Option<std::path::PathBuf>,
        /// A field whose value is asked for on the terminal, not echoed (repeatable)
        #[arg(long, value_name = "NAME")]
        field: Vec<String>,
    },
    /// The tenant's secrets: names and field names, never values
    #[command(visible_alias = "ls")]
    List,
    /// One secret's names and times, never its values
    #[command(name = "get", visible_alias = "inspect")]
    Get {
        /// The secret's name
        name: String,
    },
    /// Delete a secret: tasks that need it fail from then on
    Delete {
        /// The secret's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SignerCommand {
    /// Trust a public key to sign the tenant's packages
    Add {
        /// The tenant's name for the key
        name: String,
        /// The public key: a file `package keygen` wrote (NAME.pub), or `ed25519:…` itself
        #[arg(long, value_name = "FILE|KEY")]
        public_key: String,
    },
    /// The keys the tenant trusts, and whether it requires signatures
    #[command(visible_alias = "ls")]
    List,
    /// Stop trusting a key
    Remove {
        /// The key's name
        name: String,
    },
    /// Require every upload to be signed by a trusted key (on), or not (off)
    Require {
        /// on or off
        state: OnOff,
    },
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn on(self) -> bool {
        self == OnOff::On
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest rows of a chain (the tenant's, or with an admin key and no --tenant the
    /// deployment's), oldest of them first
    #[command(visible_alias = "ls")]
    List {
        /// Only this action: key.create, key.revoke, tenant.create, tenant.update, tenant.delete,
        /// package.upload, package.delete, workflow.execute, workflow.pause, workflow.resume,
        /// execution.cancel, execution.retry, trigger.pause, trigger.resume, trigger.fire,
        /// auth.failures
        #[arg(long, value_name = "ACTION")]
        action: Option<String>,
        /// Only the actions of this key id
        #[arg(long, value_name = "KEY_ID")]
        actor: Option<String>,
        /// Rows at or after this time (RFC 3339)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Rows before this time (RFC 3339)
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Rows shown (1 to 1000)
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: u32,
        /// Keep printing rows as they are written (every 2s) until interrupted
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Check a chain's hashes row by row on this machine: exit 0 with the head hash to keep,
    /// or exit 8 naming the first row that was edited, deleted or replaced
    Verify,
}
