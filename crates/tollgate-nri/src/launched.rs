//! The connection containerd hands a plugin it launches itself (from NRI's `plugin_path`): one end
//! of a socketpair as file descriptor `NRI_PLUGIN_SOCKET` (3), with the plugin's name and index in
//! `NRI_PLUGIN_NAME` and `NRI_PLUGIN_IDX` (containerd/nri `pkg/adaptation/plugin.go`,
//! `newLaunchedPlugin`). Such a plugin starts with containerd, before any pod, so no container is
//! created while it is away.
//!
//! The one `unsafe` block of tollgate is here: adopting an inherited descriptor has no safe std
//! API. It is sound because the descriptor is taken once, at start, before anything else in the
//! process opens a file, and only when the runtime said which one it is; a descriptor that is not a
//! socket is refused.

use std::os::unix::net::UnixStream;

/// The environment variable naming the inherited descriptor.
pub const SOCKET_ENV: &str = "NRI_PLUGIN_SOCKET";
/// The environment variable with the name the runtime launched the plugin as.
pub const NAME_ENV: &str = "NRI_PLUGIN_NAME";
/// The environment variable with the index the runtime launched the plugin as.
pub const INDEX_ENV: &str = "NRI_PLUGIN_IDX";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_descriptors_past_stdio_are_taken() {
        assert_eq!(descriptor("3"), Ok(3));
        assert_eq!(descriptor(" 7 "), Ok(7));
        for bad in ["0", "2", "-1", "", "three", "3.0", "99999999999"] {
            assert!(matches!(descriptor(bad), Err(LaunchError::NotADescriptor(_))), "{bad}");
        }
    }
}

/// Why the inherited connection cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    /// The variable does not name a descriptor above the standard ones.
    #[error("{SOCKET_ENV}={0:?} is not a file descriptor number of 3 or more")]
    NotADescriptor(String),
    /// The descriptor is not a unix socket.
    #[error("{SOCKET_ENV}={fd}: not a socket the runtime connected ({message})")]
    NotASocket {
        /// The descriptor.
        fd: i32,
        /// What the OS said.
        message: String,
    },
}

/// The descriptor number `value` names, if it is one a runtime may pass (not stdin, stdout or stderr).
pub fn descriptor(value: &str) -> Result<i32, LaunchError> {
    match value.trim().parse::<i32>() {
        Ok(fd) if fd >= 3 => Ok(fd),
        _ => Err(LaunchError::NotADescriptor(value.to_owned())),
    }
}

/// The connection the runtime launched this process with, if it did (`NRI_PLUGIN_SOCKET` set).
/// Call once, at start.
pub fn inherited() -> Result<Option<UnixStream>, LaunchError> {
    let Ok(value) = std::env::var(SOCKET_ENV) else { return Ok(None) };
    let fd = descriptor(&value)?;
    // SAFETY: the runtime passed `fd` to this process for the plugin connection (ExtraFiles) and said
    // so in the environment; this runs once, at start, so nothing else in the process owns `fd` or
    // can have opened a file under that number, and `UnixStream` becomes its only owner.
    #[allow(unsafe_code)]
    let stream = unsafe { <UnixStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // Anything but a socket fails here, and dropping the stream closes the descriptor we took.
    stream.local_addr().map_err(|e| LaunchError::NotASocket { fd, message: e.to_string() })?;
    Ok(Some(stream))
}
