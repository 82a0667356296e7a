//! Packages as OCI artifacts, in the WebAssembly convention that `wkg`
//! (wasm-pkg-tools) uses: config `application/vnd.wasm.config.v0+json`,
//! the component as an `application/wasm` layer; orchestr8 adds its
//! manifest as a second layer of its own media type. An artifact without
//! that layer (published by `wkg` or any other tool) is a plain component.
//!
//! Registries on a loopback address are spoken to over plain HTTP (as a
//! registry started for tests or development is); all others over HTTPS.
//! Credentials, when needed, come from `ORCHESTR8_REGISTRY_USERNAME` and
//! `ORCHESTR8_REGISTRY_PASSWORD`.

use std::collections::BTreeMap;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;

use super::{
    FORMAT, Fetched, MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, Package, PackageError, WORLD,
};

/// The config blob's media type (the wasm OCI convention).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The component layer's media type.
pub const WASM_MEDIA_TYPE: &str = "application/wasm";
/// The orchestr8 manifest layer's media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.orchestr8.agent.manifest.v1+json";

fn reference(text: &str) -> Result<Reference, PackageError> {
    text.parse().map_err(|e| {
        PackageError::unreachable(
            format!("oci://{text}"),
            format!("not an OCI reference such as `ghcr.io/org/agent:1.0.0` ({e})"),
        )
    })
}

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(registry, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn client(reference: &Reference) -> Client {
    let registry = reference.resolve_registry().to_string();
    let protocol = if is_loopback(&registry) {
        ClientProtocol::HttpsExcept(vec![registry])
    } else {
        ClientProtocol::Https
    };
    Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    })
}

fn auth() -> RegistryAuth {
    match (
        std::env::var("ORCHESTR8_REGISTRY_USERNAME"),
        std::env::var("ORCHESTR8_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// Pushes `package` to `reference` (`host/repo:tag`); returns the
/// manifest's URL.
pub async fn push(reference_text: &str, package: &Package) -> Result<String, PackageError> {
    let reference = reference(reference_text)?;
    let m = &package.manifest;
    let manifest_json = serde_json::to_vec_pretty(m).unwrap_or_default();
    let layers = vec![
        ImageLayer::new(package.component.clone(), WASM_MEDIA_TYPE.into(), None),
        ImageLayer::new(manifest_json, MANIFEST_MEDIA_TYPE.into(), None),
    ];
    let config = json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": [m.component.digest],
        "component": {
            "exports": ["orchestr8:agent/handler@0.1.0"],
            "target": WORLD,
        },
    });
    let config = Config::new(
        serde_json::to_vec(&config).unwrap_or_default(),
        CONFIG_MEDIA_TYPE.into(),
        None,
    );
    let annotations = BTreeMap::from([
        ("org.opencontainers.image.title".to_string(), m.id.clone()),
        (
            "org.opencontainers.image.version".to_string(),
            m.version.clone(),
        ),
        (
            "org.opencontainers.image.description".to_string(),
            m.description.clone(),
        ),
        ("dev.orchestr8.format".to_string(), FORMAT.to_string()),
    ]);
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    let pushed = client(&reference)
        .push(&reference, &layers, config, &auth(), Some(manifest))
        .await
        .map_err(|e| PackageError::unreachable(format!("oci://{reference_text}"), e))?;
    Ok(pushed.manifest_url)
}

/// Pulls the package (or plain component) at `reference` (`host/repo:tag`).
/// The manifest is read first: an artifact without a WebAssembly layer is
/// refused before any layer is downloaded.
pub async fn pull(reference_text: &str) -> Result<Fetched, PackageError> {
    let source = format!("oci://{reference_text}");
    let reference = reference(reference_text)?;
    let client = client(&reference);
    let (manifest, _) = client
        .pull_image_manifest(&reference, &auth())
        .await
        .map_err(|e| PackageError::unreachable(&source, e))?;
    let find = |media_type: &str| manifest.layers.iter().find(|l| l.media_type == media_type);
    let Some(wasm) = find(WASM_MEDIA_TYPE) else {
        let layers: Vec<&str> = manifest
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        return Err(PackageError::NotAnAgent {
            origin: source,
            reason: format!(
                "the artifact has no `{WASM_MEDIA_TYPE}` layer (config `{}`, layers: {}): \
                 not a WebAssembly component",
                manifest.config.media_type,
                if layers.is_empty() {
                    "none".to_string()
                } else {
                    layers.join(", ")
                }
            ),
        });
    };
    let blob = |layer: &oci_client::manifest::OciDescriptor, limit: usize| {
        let client = &client;
        let reference = &reference;
        let source = &source;
        let layer = layer.clone();
        async move {
            if layer.size < 0 || layer.size as u64 > limit as u64 {
                return Err(PackageError::unreachable(
                    source,
                    format!("a `{}` layer larger than {limit} bytes", layer.media_type),
                ));
            }
            let mut data = Vec::new();
            client
                .pull_blob(reference, &layer, &mut data)
                .await
                .map_err(|e| PackageError::unreachable(source, e))?;
            Ok(data)
        }
    };
    let component = blob(wasm, MAX_COMPONENT_BYTES).await?;
    let Some(manifest_layer) = find(MANIFEST_MEDIA_TYPE) else {
        let name = reference
            .repository()
            .rsplit('/')
            .next()
            .unwrap_or("component");
        return Ok(Fetched::Component {
            bytes: component,
            origin: format!("{name}.wasm"),
        });
    };
    let text = blob(manifest_layer, MAX_MANIFEST_BYTES).await?;
    let manifest = Package::parse_manifest(&text, &source)?;
    Ok(Fetched::Package(Box::new(Package {
        manifest,
        component,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_registries_are_spoken_to_in_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("ghcr.io"));
        assert!(is_loopback("[::1]:5000"));
        assert!(
            !is_loopback("127.example.com:443"),
            "a name is not an address"
        );
        assert!(!is_loopback("registry.example.com:5000"));
    }
}
