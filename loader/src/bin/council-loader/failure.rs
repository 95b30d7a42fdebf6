//! How a command fails: the exit status it ends with, and the message,
//! for every error the library can return.

use council_loader::cluster::ClusterError;
use council_loader::export::ExportError;
use council_loader::import::{ExtensionError, FileError, UploadError};
use council_loader::install::InstallError;
use council_loader::sample::SampleError;

/// The exit status of a failed run, as the README documents them (0 is
/// success).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCode {
    /// The server refused (an import that did not commit, with its
    /// SQLSTATE), or the check failed (a verify that found rows missing or
    /// differing).
    Refused = 1,
    /// A bad local file or argument.
    BadInput = 2,
    /// No server to talk to, or the extension is not installed or could not
    /// be.
    Unavailable = 3,
    /// The connection broke during COMMIT: whether the import committed is
    /// unknown until a verify says.
    OutcomeUnknown = 4,
}

/// A failure, with the exit status it maps to.
pub struct Failure {
    pub code: FailureCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: FailureCode, message: impl std::fmt::Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

/// The server's own error with all it says, or a connection that failed.
impl From<postgres::Error> for Failure {
    fn from(err: postgres::Error) -> Failure {
        let Some(db) = err.as_db_error() else {
            return Failure::new(FailureCode::Unavailable, err);
        };
        let mut message = format!("{}: {}", db.severity(), db.message());
        if let Some(detail) = db.detail() {
            message.push_str(&format!("\nDETAIL: {detail}"));
        }
        if let Some(hint) = db.hint() {
            message.push_str(&format!("\nHINT: {hint}"));
        }
        message.push_str(&format!("\nSQLSTATE: {}", db.code().code()));
        Failure::new(FailureCode::Refused, message)
    }
}

/// A failed import or verify: the server's error, a local file's, or the transfer's.
impl From<UploadError> for Failure {
    fn from(err: UploadError) -> Failure {
        match err {
            UploadError::Postgres(err) => err.into(),
            UploadError::File(err) => err.into(),
            err @ UploadError::OutcomeUnknown(_) => Failure::new(FailureCode::OutcomeUnknown, err),
            other => Failure::new(FailureCode::Refused, other),
        }
    }
}

impl From<FileError> for Failure {
    fn from(err: FileError) -> Failure {
        Failure::new(FailureCode::BadInput, err)
    }
}

impl From<SampleError> for Failure {
    fn from(err: SampleError) -> Failure {
        Failure::new(FailureCode::BadInput, err)
    }
}

/// An export that did not write its file: the server's refusal, the local
/// file's trouble, or a database without a recent enough extension.
impl From<ExportError> for Failure {
    fn from(err: ExportError) -> Failure {
        match err {
            ExportError::Postgres(err) => err.into(),
            ExportError::Exists(_) | ExportError::Write { .. } => {
                Failure::new(FailureCode::BadInput, err)
            }
            ExportError::NotInstalled { .. } | ExportError::TooOld { .. } => {
                Failure::new(FailureCode::Unavailable, err)
            }
            ExportError::ReadBack(_) => Failure::new(FailureCode::Refused, err),
        }
    }
}

/// The private local cluster could not be made, started or stopped.
impl From<ClusterError> for Failure {
    fn from(err: ClusterError) -> Failure {
        Failure::new(FailureCode::Unavailable, err)
    }
}

/// Installing the files or the extension failed. A package that is not one
/// is bad input instead; `install_into` says so where it looks for one.
impl From<InstallError> for Failure {
    fn from(err: InstallError) -> Failure {
        match err {
            InstallError::Postgres(err) => err.into(),
            other => Failure::new(FailureCode::Unavailable, other),
        }
    }
}

/// The database lacks the extension (or its upload functions): the message
/// says what to run.
impl From<ExtensionError> for Failure {
    fn from(err: ExtensionError) -> Failure {
        match err {
            ExtensionError::Postgres(err) => err.into(),
            other => Failure::new(FailureCode::Unavailable, other),
        }
    }
}
