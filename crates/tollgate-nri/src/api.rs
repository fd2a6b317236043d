//! The NRI messages tollgate uses, with the field numbers of containerd/nri v0.12's
//! `pkg/api/api.proto` (package `nri.pkg.api.v1alpha1`). Fields tollgate does not read (mounts,
//! hooks, resources, …) are left out: protobuf skips unknown fields, so their bytes never matter.

use std::collections::HashMap;

/// The plugin-side service the runtime calls.
pub const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
/// The runtime-side service the plugin calls.
pub const RUNTIME_SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
/// The NRI version tollgate implements, sent at registration.
pub const NRI_VERSION: &str = "v0.12.2";

/// NRI events (`enum Event`); a plugin subscribes with the bit `1 << (event - 1)`.
pub mod event {
    /// Before a container is created; an error refuses it.
    pub const CREATE_CONTAINER: u32 = 4;
    /// After all plugins adjusted a container: a validator's rejection (or failure) refuses it.
    pub const VALIDATE_CONTAINER_ADJUSTMENT: u32 = 14;

    /// The `ConfigureResponse.events` mask for `events`.
    pub fn mask(events: &[u32]) -> i32 {
        events.iter().fold(0i32, |m, e| m | (1i32 << (e - 1)))
    }
}

/// `RegisterPluginRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterPluginRequest {
    /// The plugin's name (`required_plugins` names it).
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// Two digits that order plugins.
    #[prost(string, tag = "2")]
    pub plugin_idx: String,
    /// The NRI version the plugin speaks.
    #[prost(string, tag = "3")]
    pub nri_version: String,
}

/// `Empty`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// `ConfigureRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigureRequest {
    /// Plugin configuration from the runtime's config, if any.
    #[prost(string, tag = "1")]
    pub config: String,
    /// `containerd`, …
    #[prost(string, tag = "2")]
    pub runtime_name: String,
    /// Its version.
    #[prost(string, tag = "3")]
    pub runtime_version: String,
    /// Registration timeout, ms.
    #[prost(int64, tag = "4")]
    pub registration_timeout: i64,
    /// Request timeout, ms: every answer must come within it.
    #[prost(int64, tag = "5")]
    pub request_timeout: i64,
    /// The runtime's NRI version.
    #[prost(string, tag = "6")]
    pub nri_version: String,
}

/// `ConfigureResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigureResponse {
    /// The events subscribed to ([`event::mask`]).
    #[prost(int32, tag = "2")]
    pub events: i32,
}

/// `SynchronizeRequest`: the pods and containers that exist, possibly in several parts.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynchronizeRequest {
    /// Pods.
    #[prost(message, repeated, tag = "1")]
    pub pods: Vec<PodSandbox>,
    /// Containers.
    #[prost(message, repeated, tag = "2")]
    pub containers: Vec<Container>,
    /// More parts follow.
    #[prost(bool, tag = "3")]
    pub more: bool,
}

/// `SynchronizeResponse` (tollgate asks for no updates).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SynchronizeResponse {
    /// Echoes the request's `more`.
    #[prost(bool, tag = "2")]
    pub more: bool,
}

/// `CreateContainerRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerRequest {
    /// The container's pod.
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    /// The container.
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
}

/// `CreateContainerResponse` (tollgate adjusts nothing).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateContainerResponse {}

/// `ValidateContainerAdjustmentRequest` (only the fields tollgate reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValidateContainerAdjustmentRequest {
    /// The container's pod.
    #[prost(message, optional, tag = "1")]
    pub pod: Option<PodSandbox>,
    /// The container, as it was before adjustments.
    #[prost(message, optional, tag = "2")]
    pub container: Option<Container>,
    /// The plugins consulted for this container.
    #[prost(message, repeated, tag = "6")]
    pub plugins: Vec<PluginInstance>,
}

/// `ValidateContainerAdjustmentResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValidateContainerAdjustmentResponse {
    /// Refuse the container.
    #[prost(bool, tag = "1")]
    pub reject: bool,
    /// Why.
    #[prost(string, tag = "2")]
    pub reason: String,
}

/// `PluginInstance`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginInstance {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Index.
    #[prost(string, tag = "2")]
    pub index: String,
}

/// `PodSandbox` (the fields tollgate reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSandbox {
    /// Sandbox ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Pod name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Pod UID.
    #[prost(string, tag = "3")]
    pub uid: String,
    /// Kubernetes namespace.
    #[prost(string, tag = "4")]
    pub namespace: String,
    /// Labels.
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
    /// Annotations.
    #[prost(map = "string, string", tag = "6")]
    pub annotations: HashMap<String, String>,
}

/// `Container` (the fields tollgate reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    /// Container ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its pod's sandbox ID.
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    /// Container name.
    #[prost(string, tag = "3")]
    pub name: String,
    /// `ContainerState`.
    #[prost(int32, tag = "4")]
    pub state: i32,
    /// Labels.
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
    /// Annotations (the CRI's among them; set by whoever created the container: untrusted).
    #[prost(map = "string, string", tag = "6")]
    pub annotations: HashMap<String, String>,
    /// The image, from containerd ≥ 2.4 (NRI v0.12.2); `None` before, and for restored containers.
    #[prost(message, optional, tag = "22")]
    pub image: Option<Image>,
}

/// `Image`: what the runtime resolved the container's image to.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    /// The reference (a repo tag, else the repo digest).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The index digest of a multi-platform image, else the manifest digest.
    #[prost(string, tag = "2")]
    pub digest: String,
    /// The platform's config digest (the image ID).
    #[prost(string, tag = "3")]
    pub config_digest: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_subscription_mask_has_bit_event_minus_one() {
        assert_eq!(event::mask(&[event::CREATE_CONTAINER]), 0x8);
        assert_eq!(event::mask(&[event::CREATE_CONTAINER, event::VALIDATE_CONTAINER_ADJUSTMENT]), 0x2008);
    }

    /// A container with fields tollgate leaves out (args = 7, mounts = 9) still yields its image (22).
    #[test]
    fn unknown_fields_are_skipped_and_the_image_is_field_22() {
        let mut bytes = Container { id: "c1".into(), ..Container::default() }.encode_to_vec();
        bytes.extend([0x3a, 2, b'-', b'c']); // 7: args "-c"
        bytes.extend([0x4a, 3, 0x0a, 1, b'/']); // 9: a Mount { destination: "/" }
        let image = Image { name: "r/a:1".into(), digest: "sha256:ab".into(), config_digest: String::new() };
        bytes.extend([0xb2, 0x01]); // field 22, length-delimited
        let body = image.encode_to_vec();
        bytes.push(u8::try_from(body.len()).unwrap());
        bytes.extend(body);
        let c = Container::decode(bytes.as_slice()).unwrap();
        assert_eq!((c.id.as_str(), c.image.map(|i| i.digest)), ("c1", Some("sha256:ab".to_owned())));
    }
}
