//! Errors of the command line and the exit codes they map to.

use std::process::ExitCode;

/// The documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: done.
    Ok = 0,
    /// 1: bad usage or input, refused by the server as invalid, or a local file problem.
    User = 1,
    /// 2: the server could not be reached.
    Unreachable = 2,
    /// 3: the server said not found.
    NotFound = 3,
    /// 4: the server said unauthorised or forbidden.
    Denied = 4,
    /// 5: any other server error.
    Server = 5,
    /// 6: the execution waited on or watched failed or was cancelled.
    ExecutionFailed = 6,
    /// 7: the wait ran out (`--wait-timeout`) before the execution finished.
    WaitTimedOut = 7,
    /// 8: an audit chain does not verify (`audit verify`).
    ChainBroken = 8,
    /// 141 (128 + SIGPIPE), quietly: whoever read the output stopped reading (`| head -1`),
    /// the status a shell gives any tool the closed pipe ended.
    BrokenPipe = 141,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        ExitCode::from(s as u8)
    }
}

/// Why a command failed. The message is one line and never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    /// No answer came. `origin` says where the URL came from ("from --server", "the default").
    #[error("cannot reach the server at {server} ({origin}): {cause}")]
    Unreachable { server: String, origin: String, cause: String },
    /// Something answered that is not Cloacina's API (a proxy's page, another service).
    #[error(
        "the server at {server} ({origin}) answered HTTP {status} with {what}, not Cloacina's API: is that the right URL?"
    )]
    Foreign { server: String, origin: String, status: u16, what: String },
    /// The server answered with an error envelope.
    #[error("{message} (HTTP {status}, {code})")]
    Api { status: u16, code: String, message: String },
    #[error("{0}")]
    Local(String),
    /// The execution waited on ended other than completed.
    #[error("{0}")]
    ExecutionFailed(String),
    /// The wait for an execution ran out.
    #[error("{0}")]
    WaitTimedOut(String),
    /// An audit chain does not verify: the first break.
    #[error("{0}")]
    ChainBroken(String),
    /// The reader of the output went away; nothing more is printed.
    #[error("the output was closed")]
    Closed,
}

impl CliError {
    /// The exit status this error ends the process with.
    pub fn status(&self) -> ExitStatus {
        match self {
            CliError::Usage(_) | CliError::Local(_) => ExitStatus::User,
            CliError::Closed => ExitStatus::BrokenPipe,
            CliError::ExecutionFailed(_) => ExitStatus::ExecutionFailed,
            CliError::WaitTimedOut(_) => ExitStatus::WaitTimedOut,
            CliError::ChainBroken(_) => ExitStatus::ChainBroken,
            CliError::Unreachable { .. } | CliError::Foreign { .. } => ExitStatus::Unreachable,
            CliError::Api { status, .. } => match status {
                404 => ExitStatus::NotFound,
                401 | 403 => ExitStatus::Denied,
                400 | 409 | 413 | 415 | 422 => ExitStatus::User,
                _ => ExitStatus::Server,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> CliError {
        CliError::Api { status, code: "x".into(), message: "m".into() }
    }

    #[test]
    fn server_answers_map_to_the_documented_exit_codes() {
        assert_eq!(api(404).status(), ExitStatus::NotFound);
        assert_eq!(api(401).status(), ExitStatus::Denied);
        assert_eq!(api(403).status(), ExitStatus::Denied);
        assert_eq!(api(400).status(), ExitStatus::User);
        assert_eq!(api(409).status(), ExitStatus::User);
        assert_eq!(api(500).status(), ExitStatus::Server);
        assert_eq!(api(503).status(), ExitStatus::Server);
        assert_eq!(api(429).status(), ExitStatus::Server);
        let unreachable = CliError::Unreachable {
            server: "http://x".into(),
            origin: "from --server".into(),
            cause: "refused".into(),
        };
        assert_eq!(unreachable.status(), ExitStatus::Unreachable);
        assert_eq!(ExitStatus::Server as u8, 5);
    }
}
