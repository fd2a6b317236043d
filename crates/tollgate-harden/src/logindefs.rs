//! `/etc/login.defs`: the system UID and GID range.

use crate::HardenError;

/// The range system accounts are allocated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdRange {
    /// `SYS_UID_MIN`.
    pub uid_min: u32,
    /// `SYS_UID_MAX`.
    pub uid_max: u32,
    /// `SYS_GID_MIN`.
    pub gid_min: u32,
    /// `SYS_GID_MAX`.
    pub gid_max: u32,
}

impl Default for IdRange {
    /// kubeadm's (and shadow-utils') defaults when login.defs does not say: 100–999.
    fn default() -> Self {
        IdRange { uid_min: 100, uid_max: 999, gid_min: 100, gid_max: 999 }
    }
}

/// Parses login.defs (`KEY VALUE` lines, `#` comments); `None` (no file) gives the defaults.
pub fn parse(text: Option<&str>) -> Result<IdRange, HardenError> {
    let mut r = IdRange::default();
    let Some(text) = text else { return Ok(r) };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(key), value) = (parts.next(), parts.next()) else { continue };
        let slot = match key {
            "SYS_UID_MIN" => &mut r.uid_min,
            "SYS_UID_MAX" => &mut r.uid_max,
            "SYS_GID_MIN" => &mut r.gid_min,
            "SYS_GID_MAX" => &mut r.gid_max,
            _ => continue,
        };
        *slot = value.and_then(|v| v.parse::<u32>().ok()).ok_or_else(|| HardenError::Corrupt {
            file: "login.defs".into(),
            line: i + 1,
            message: format!("{key} needs a decimal number"),
        })?;
    }
    for (what, min, max) in [("UID", r.uid_min, r.uid_max), ("GID", r.gid_min, r.gid_max)] {
        if min == 0 || min > max {
            return Err(HardenError::Corrupt {
                file: "login.defs".into(),
                line: 0,
                message: format!("SYS_{what}_MIN {min} must be at least 1 and not above SYS_{what}_MAX {max}"),
            });
        }
    }
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_system_range_and_defaults_the_rest() {
        let r = parse(Some("# comment\nSYS_UID_MIN\t201\nSYS_UID_MAX 499\nUID_MIN 1000\n")).unwrap();
        assert_eq!(r, IdRange { uid_min: 201, uid_max: 499, gid_min: 100, gid_max: 999 });
        assert_eq!(parse(None).unwrap(), IdRange::default());
        assert!(parse(Some("SYS_GID_MIN ten\n")).unwrap_err().to_string().contains("login.defs:1"));
        assert!(parse(Some("SYS_GID_MIN 900\nSYS_GID_MAX 800\n")).is_err());
    }
}
