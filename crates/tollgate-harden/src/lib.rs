//! A non-root kubeadm control plane: kube-apiserver, kube-controller-manager,
//! kube-scheduler and etcd as distinct system users with the least file access
//! and capabilities, the way kubeadm's removed `RootlessControlPlane` feature
//! did it, composed with tollgate's image-pin patches.
//!
//! The core is pure: [`logindefs`], [`accounts`] and [`plan`] turn file
//! contents and file states into a [`plan::Plan`]; [`security`] renders the
//! securityContext as kubeadm patches and manifest edits; [`audit`] checks a
//! node against the plan and the CIS 1.1.x checks. [`apply`] is the shell:
//! locks, atomic writes, chown/chmod, the journal, and revert.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod apply;
pub mod audit;
pub mod logindefs;
pub mod plan;
pub mod security;

/// What went wrong, with the file and line where there is one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardenError {
    /// A line of passwd, group or login.defs cannot be parsed; nothing is written.
    #[error("{file}:{line}: {message}; fix the line (nothing was changed)")]
    Corrupt {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No free ID is left in the system range.
    #[error(
        "no free {what} between {min} and {max} (SYS_{what}_MIN/MAX in /etc/login.defs); free one or widen the range"
    )]
    RangeExhausted {
        /// `UID` or `GID`.
        what: &'static str,
        /// Range start.
        min: u32,
        /// Range end.
        max: u32,
    },
    /// The ID `--id` asks for belongs to another account.
    #[error(
        "--id {name}={id}: {what} {id} is taken by {kind} {holder}; choose a free {what} (the system range is \
         {min}-{max}) or leave out --id {name} to get the lowest free one"
    )]
    IdTaken {
        /// `user` or `group`.
        kind: &'static str,
        /// The account to create.
        name: String,
        /// `UID` or `GID`.
        what: &'static str,
        /// The ID asked for.
        id: u32,
        /// The account that has it.
        holder: String,
        /// The system range's start.
        min: u32,
        /// Its end.
        max: u32,
    },
    /// An existing account cannot be reused.
    #[error("existing {kind} {name}: {message}")]
    Conflict {
        /// `user` or `group`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// Why, and what to do.
        message: String,
    },
    /// A static-pod manifest cannot be read or edited.
    #[error("manifest {path}: {message}")]
    Manifest {
        /// The manifest.
        path: String,
        /// Why.
        message: String,
    },
    /// Another program holds the account-file lock.
    #[error("{path} is locked by another program (useradd, vipw, kubeadm?); try again when it is done")]
    Locked {
        /// The lock file.
        path: String,
    },
    /// A file operation failed.
    // Not a `source`: the message already says the cause, and printing the
    // chain would say it twice.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The journal is missing or does not match the node.
    #[error("journal {path}: {message}")]
    Journal {
        /// The journal file.
        path: String,
        /// Why.
        message: String,
    },
}
