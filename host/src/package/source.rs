//! Where packages come from: a manifest file (or a directory holding one),
//! an `http(s)://` URL of a manifest (the component next to it), or an OCI
//! registry reference `oci://host/repo:tag`. A component file or URL
//! (`.wasm`) is accepted as well: with the manifest beside it that names it
//! when there is one, else as a plain component.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Fetched, MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES, Package, PackageError, oci};

const WASM_MAGIC: &[u8] = b"\0asm";

/// A package source, as given on the command line or in the lockfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A manifest file, or a directory holding exactly one.
    Path(PathBuf),
    /// The URL of a manifest.
    Http(String),
    /// An OCI reference, without the `oci://`.
    Oci(String),
}

impl Source {
    /// Reads a source: `oci://…`, `http(s)://…`, or a path.
    pub fn parse(text: &str) -> Source {
        if let Some(reference) = text.strip_prefix("oci://") {
            Source::Oci(reference.to_string())
        } else if text.starts_with("http://") || text.starts_with("https://") {
            Source::Http(text.to_string())
        } else {
            Source::Path(PathBuf::from(text))
        }
    }

    /// Fetches the package or component (not yet verified).
    pub async fn fetch(&self) -> Result<Fetched, PackageError> {
        match self {
            Source::Path(path) => read_dir_or_file(path),
            Source::Http(url) => fetch_http(url).await,
            Source::Oci(reference) => oci::pull(reference).await,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(path) => write!(f, "{}", path.display()),
            Source::Http(url) => f.write_str(url),
            Source::Oci(reference) => write!(f, "oci://{reference}"),
        }
    }
}

fn read_dir_or_file(path: &Path) -> Result<Fetched, PackageError> {
    if path.is_dir() {
        let found = manifests_in(path)?;
        return match found.as_slice() {
            [one] => read_package(one).map(|p| Fetched::Package(Box::new(p))),
            [] => Err(PackageError::unreachable(
                path.display(),
                "no *.agent.json manifest in it: name a manifest or a component (.wasm) file",
            )),
            many => Err(PackageError::unreachable(
                path.display(),
                format!("{} manifests in it: name the one to install", many.len()),
            )),
        };
    }
    let size = std::fs::metadata(path)
        .map_err(|e| PackageError::unreachable(path.display(), e))?
        .len();
    if size > MAX_COMPONENT_BYTES as u64 {
        return Err(PackageError::unreachable(
            path.display(),
            format!("larger than {MAX_COMPONENT_BYTES} bytes"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| PackageError::unreachable(path.display(), e))?;
    if !bytes.starts_with(WASM_MAGIC) {
        return read_package(path).map(|p| Fetched::Package(Box::new(p)));
    }
    // A component: the manifest beside it that names it, if there is one.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    for manifest in manifests_in(dir)? {
        if let Ok(package) = read_package(&manifest)
            && Some(&package.manifest.component.file) == name.as_ref()
        {
            return Ok(Fetched::Package(Box::new(package)));
        }
    }
    Ok(Fetched::Component {
        bytes,
        origin: path.display().to_string(),
    })
}

/// The `*.agent.json` files in `dir`.
fn manifests_in(dir: &Path) -> Result<Vec<PathBuf>, PackageError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| PackageError::unreachable(dir.display(), e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".agent.json"))
        .collect();
    found.sort();
    Ok(found)
}

/// A manifest file and the component it names, beside it.
fn read_package(manifest_path: &Path) -> Result<Package, PackageError> {
    let text = std::fs::read(manifest_path)
        .map_err(|e| PackageError::unreachable(manifest_path.display(), e))?;
    let manifest = parse_manifest(&text, &manifest_path.display().to_string())?;
    let component_path = manifest_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&manifest.component.file);
    let component = std::fs::read(&component_path)
        .map_err(|e| PackageError::unreachable(component_path.display(), e))?;
    Ok(Package {
        manifest,
        component,
    })
}

/// A manifest's text; something that is not JSON at all is named for what
/// it is not, with the files to give instead.
fn parse_manifest(text: &[u8], origin: &str) -> Result<super::PackageManifest, PackageError> {
    if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_err() {
        return Err(PackageError::NotAnAgent {
            origin: origin.to_string(),
            reason: "it is neither a package manifest (*.agent.json) nor a WebAssembly component \
                     (.wasm): give the manifest `orchestr8 package` wrote, the component beside \
                     it, or the directory holding both"
                .into(),
        });
    }
    Package::parse_manifest(text, origin)
}

async fn get(client: &reqwest::Client, url: &str, limit: usize) -> Result<Vec<u8>, PackageError> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| PackageError::unreachable(url, e))?;
    if !response.status().is_success() {
        return Err(PackageError::unreachable(
            url,
            format!("the server answered {}", response.status()),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| PackageError::unreachable(url, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(PackageError::unreachable(
                url,
                format!("larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn fetch_http(url: &str) -> Result<Fetched, PackageError> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| PackageError::unreachable(url, e))?;
    let body = get(&client, url, MAX_COMPONENT_BYTES).await?;
    if body.starts_with(WASM_MAGIC) {
        let origin = url.rsplit('/').next().unwrap_or(url).to_string();
        return Ok(Fetched::Component {
            bytes: body,
            origin,
        });
    }
    if body.len() > MAX_MANIFEST_BYTES {
        return Err(PackageError::unreachable(
            url,
            format!("a manifest larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    let manifest = parse_manifest(&body, url)?;
    let base = reqwest::Url::parse(url).map_err(|e| PackageError::unreachable(url, e))?;
    let component_url = base
        .join(&manifest.component.file)
        .map_err(|e| PackageError::unreachable(url, e))?;
    let component = get(&client, component_url.as_str(), MAX_COMPONENT_BYTES).await?;
    Ok(Fetched::Package(Box::new(Package {
        manifest,
        component,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart_by_their_scheme() {
        assert_eq!(
            Source::parse("oci://127.0.0.1:5000/agents/x:1.0.0"),
            Source::Oci("127.0.0.1:5000/agents/x:1.0.0".into())
        );
        assert!(matches!(
            Source::parse("https://h/x.agent.json"),
            Source::Http(_)
        ));
        assert!(matches!(Source::parse("dist"), Source::Path(_)));
        assert_eq!(
            Source::parse("oci://r/a:1").to_string(),
            "oci://r/a:1",
            "a source prints as given, for the lockfile"
        );
    }
}
