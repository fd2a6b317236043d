//! systemd drop-ins that override a unit's image variable (Typhoon's
//! `10-image-override.conf` pattern, `KUBELET_IMAGE`, `ETCD_IMAGE`), pinned by
//! digest. Pure: values in, text out.

use tollgate_oci::Reference;

/// The drop-in's file name.
pub const FILE_NAME: &str = "10-image-override.conf";

/// The drop-in cannot be written as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DropInError(pub String);

/// The unit `unit` names, as systemctl reads it: a name without a suffix is a
/// service (`kubelet` is `kubelet.service`).
pub fn unit_name(unit: &str) -> String {
    if unit.contains('.') || unit.is_empty() { unit.to_owned() } else { format!("{unit}.service") }
}

/// Checks a unit name: `NAME.service` (or .socket, .timer…), no path separators.
pub fn check_unit(unit: &str) -> Result<(), DropInError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || ":_.\\@-".contains(c);
    if unit.is_empty() || !unit.chars().all(valid) || !unit.contains('.') || unit.starts_with('.') {
        return Err(DropInError(format!("--unit {unit:?} is not a systemd unit name such as kubelet.service")));
    }
    Ok(())
}

/// The drop-in text setting `env` to `image`. The image must carry a digest
/// unless `allow_tag`: a tag can move, a digest cannot.
pub fn image_override(unit: &str, env: &str, image: &str, allow_tag: bool) -> Result<String, DropInError> {
    check_unit(unit)?;
    let env_ok = !env.is_empty()
        && env.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && !env.starts_with(|c: char| c.is_ascii_digit());
    if !env_ok {
        return Err(DropInError(format!("--env {env:?} is not an environment variable name such as KUBELET_IMAGE")));
    }
    let r = Reference::parse_normalized(image).map_err(|e| DropInError(format!("--image {image:?}: {e}")))?;
    if r.digest().is_none() && !allow_tag {
        return Err(DropInError(format!(
            "--image {image} has no digest; pin it (`tollgate images lock`, or NAME:TAG@sha256:…) or pass --allow-tag"
        )));
    }
    Ok(format!(
        "# Written by tollgate: {unit} runs {env}={image}.\n\
         # Undo: tollgate systemd image-override --unit {unit} --env {env} --revert; systemctl daemon-reload\n\
         [Service]\n\
         Environment={env}={image}\n"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const D: &str = "sha256:6df11cc2ad9679b1117be34d3a0230add88bc0a08fd7a3ebc26b680575e8de97";

    #[test]
    fn writes_a_service_environment_override() {
        let img = format!("quay.io/poseidon/kubelet:v1.36.1@{D}");
        let text = image_override("kubelet.service", "KUBELET_IMAGE", &img, false).unwrap();
        assert!(text.ends_with(&format!("[Service]\nEnvironment=KUBELET_IMAGE={img}\n")), "{text}");
    }

    #[test]
    fn refuses_tags_and_bad_names() {
        let e =
            image_override("kubelet.service", "KUBELET_IMAGE", "quay.io/poseidon/kubelet:v1.36.1", false).unwrap_err();
        assert!(e.0.contains("has no digest"), "{e}");
        assert!(image_override("kubelet.service", "KUBELET_IMAGE", "quay.io/poseidon/kubelet:v1.36.1", true).is_ok());
        assert!(image_override("../x.service", "A", &format!("a@{D}"), false).is_err());
        assert!(image_override("kubelet.service", "lower", &format!("a@{D}"), false).is_err());
        assert!(image_override("kubelet.service", "A", "a b", true).is_err());
    }
}
